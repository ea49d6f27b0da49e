"""The local ledger: SQLite store, group-commit writer, verification and the Ledger service."""
