"""The ledger network node: local ledger, HTTP API and CLI (sync and interop build on these)."""

__version__ = "0.1.0"
