"""The registry service (nodes register signed records, heartbeat and discover each other)."""

__version__ = "0.1.0"
