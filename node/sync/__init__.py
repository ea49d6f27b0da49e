"""Replication between nodes: signed peer requests, the sync engine, live head streams."""
