"""Benchmarks: ``python -m bench.<name> [--quick]``; each prints its machine and, last, one JSON line."""
