"""The portal (マイポータル, R26): a person's own log entries, verified, and details on request (docs/portal.md)."""
