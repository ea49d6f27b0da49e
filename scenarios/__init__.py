"""Multi-node scenarios run as real processes on 127.0.0.1 (and the helpers that start them)."""
