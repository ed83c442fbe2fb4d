"""File-drop connectors: a watched inbox directory and an outbox directory per vendor."""
