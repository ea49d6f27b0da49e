"""The registry service (nodes register signed records, heartbeat and discover each other)."""
