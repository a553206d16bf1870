"""The portal (マイポータル, R26): a person's own log entries, verified; details on request."""
