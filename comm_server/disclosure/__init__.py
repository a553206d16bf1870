"""Details on request (R26): this agency answers a person's application for (11) and (12)."""
