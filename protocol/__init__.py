"""Wire protocol v1 of the ledger network: models, canonical encoding, hashing and signatures.

This package imports nothing of the node or the registry, so a second implementation (or a
verifier) can depend on it alone.
"""

PROTOCOL_VERSION = 1
