"""Versioned schema migrations for the node's SQLite database.

Each migration runs once, in its own transaction, and is recorded in ``schema_migrations``. Scripts
are split into statements at semicolons, so comments must not contain one. A
database whose recorded version is newer than the newest migration here is refused.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "ledgers, entries, checkpoints, stats",
        """
        CREATE TABLE ledgers (
            ledger_id       TEXT PRIMARY KEY,
            public_key      BLOB NOT NULL,
            is_local        INTEGER NOT NULL DEFAULT 0,
            head_seq        INTEGER NOT NULL DEFAULT 0,
            head_hash       BLOB,
            sig_digest      BLOB NOT NULL,
            first_timestamp INTEGER,
            last_timestamp  INTEGER,
            verified_seq    INTEGER NOT NULL DEFAULT 0,
            added_at        INTEGER NOT NULL
        );
        CREATE TABLE entries (
            ledger_id   TEXT NOT NULL,
            seq         INTEGER NOT NULL,
            id          TEXT NOT NULL,
            stream      TEXT NOT NULL,
            type        TEXT NOT NULL,
            issuer_oid  TEXT,
            subject_oid TEXT,
            key         TEXT,
            timestamp   INTEGER NOT NULL,
            payload     TEXT NOT NULL,
            meta        TEXT,
            prev_hash   BLOB,
            hash        BLOB NOT NULL,
            sig         BLOB NOT NULL,
            PRIMARY KEY (ledger_id, seq)
        ) WITHOUT ROWID;
        -- every secondary index ends in timestamp (then the primary key, implicitly), which is the
        -- query order, so filtered queries read the index in order and never sort or scan
        CREATE UNIQUE INDEX entries_id ON entries (id, ledger_id);
        CREATE INDEX entries_hash ON entries (substr(hash, 1, 8));
        CREATE INDEX entries_stream ON entries (stream, timestamp);
        CREATE INDEX entries_type ON entries (type, timestamp);
        CREATE INDEX entries_issuer ON entries (issuer_oid, timestamp) WHERE issuer_oid IS NOT NULL;
        CREATE INDEX entries_subject ON entries (subject_oid, timestamp) WHERE subject_oid IS NOT NULL;
        CREATE INDEX entries_key ON entries (key, timestamp) WHERE key IS NOT NULL;
        CREATE INDEX entries_timestamp ON entries (timestamp);
        CREATE TABLE checkpoints (
            ledger_id  TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            hash       BLOB NOT NULL,
            sig_digest BLOB NOT NULL,
            timestamp  INTEGER NOT NULL,
            sig        BLOB NOT NULL,
            PRIMARY KEY (ledger_id, seq)
        ) WITHOUT ROWID;
        CREATE TABLE stats (
            ledger_id TEXT NOT NULL,
            dimension TEXT NOT NULL,
            name      TEXT NOT NULL,
            count     INTEGER NOT NULL,
            PRIMARY KEY (ledger_id, dimension, name)
        ) WITHOUT ROWID;
        """,
    ),
    (
        2,
        "replication: peers, per-peer sync checkpoints, conflicts, quarantine",
        """
        ALTER TABLE ledgers ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE peers (
            ledger_id TEXT PRIMARY KEY,
            url       TEXT NOT NULL,
            mode      TEXT NOT NULL,
            source    TEXT NOT NULL,
            added_at  INTEGER NOT NULL
        );
        -- what we hold of each peer's copy (pull) or what the peer acknowledged (push), moved in the
        -- transaction that commits the entries it covers
        CREATE TABLE sync_state (
            peer       TEXT NOT NULL,
            ledger_id  TEXT NOT NULL,
            direction  TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            hash       BLOB,
            updated_at INTEGER NOT NULL,
            PRIMARY KEY (peer, ledger_id, direction)
        ) WITHOUT ROWID;
        CREATE TABLE conflicts (
            id          INTEGER PRIMARY KEY,
            kind        TEXT NOT NULL,
            ledger_id   TEXT,
            seq         INTEGER,
            key         TEXT,
            evidence    TEXT NOT NULL,
            status      TEXT NOT NULL DEFAULT 'open',
            detected_at INTEGER NOT NULL,
            resolved_at INTEGER,
            resolution  TEXT
        );
        """,
    ),
    (
        3,
        "trust attestations",
        """
        CREATE TABLE trust (
            source      TEXT NOT NULL,
            target      TEXT NOT NULL,
            attestation TEXT NOT NULL,
            issued_at   INTEGER NOT NULL,
            PRIMARY KEY (source, target)
        ) WITHOUT ROWID;
        """,
    ),
    (
        4,
        "cross-ledger references",
        """
        CREATE TABLE refs (
            ledger_id   TEXT NOT NULL,
            seq         INTEGER NOT NULL,
            position    INTEGER NOT NULL,
            target      TEXT NOT NULL,
            target_seq  INTEGER NOT NULL,
            target_hash BLOB NOT NULL,
            target_id   TEXT NOT NULL,
            type        TEXT NOT NULL,
            status      TEXT NOT NULL,
            detail      TEXT,
            attempts    INTEGER NOT NULL DEFAULT 0,
            checked_at  INTEGER NOT NULL,
            PRIMARY KEY (ledger_id, seq, position)
        ) WITHOUT ROWID;
        CREATE INDEX refs_pending ON refs (status, checked_at) WHERE status = 'pending';
        """,
    ),
    (
        5,
        "audit log: who changed what",
        """
        CREATE TABLE audit (
            id     INTEGER PRIMARY KEY AUTOINCREMENT,
            at_ms  INTEGER NOT NULL,
            actor  TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        """,
    ),
    (
        6,
        "client credentials: API tokens by scope, the secret kept only as its SHA-256",
        """
        CREATE TABLE credentials (
            id           TEXT PRIMARY KEY,
            name         TEXT NOT NULL,
            scopes       TEXT NOT NULL,
            secret_hash  BLOB NOT NULL,
            created_ms   INTEGER NOT NULL,
            last_used_ms INTEGER,
            revoked_ms   INTEGER
        );
        """,
    ),
    (
        7,
        "pin provenance: where each ledger's key pin came from",
        """
        -- config, operator, attested, registry, peer or first-sight (see node/ledger/pins.py)
        ALTER TABLE ledgers ADD COLUMN pin_source TEXT NOT NULL DEFAULT 'first-sight';
        -- the node's own ledger is pinned by its key file: the strongest provenance
        UPDATE ledgers SET pin_source = 'config' WHERE is_local = 1
        """,
    ),
    (
        8,
        "key conflicts keep each head once",
        """
        -- a key conflict's heads, each stored once: a new commit adds only the heads not held yet
        -- (new key conflicts leave conflicts.evidence empty, older ones keep their evidence there)
        CREATE TABLE conflict_heads (
            conflict_id INTEGER NOT NULL,
            hash        BLOB NOT NULL,
            PRIMARY KEY (conflict_id, hash)
        ) WITHOUT ROWID;
        CREATE INDEX conflicts_by_key ON conflicts (key, id) WHERE kind = 'key';
        """,
    ),
    (
        9,
        "secondary indexes off the acknowledging transaction: partial on indexed = 1, a watermark per ledger",
        """
        -- a commit inserts entries with indexed = 0 (primary key and id only), the indexer sets
        -- indexed = 1 in batches and moves indexed_seq (see node/storage/sqlite/indexer.py)
        -- entries already held are indexed: the column's default covers them without a rewrite
        ALTER TABLE entries ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE ledgers ADD COLUMN indexed_seq INTEGER NOT NULL DEFAULT 0;
        UPDATE ledgers SET indexed_seq = head_seq;
        DROP INDEX entries_hash;
        DROP INDEX entries_stream;
        DROP INDEX entries_type;
        DROP INDEX entries_issuer;
        DROP INDEX entries_subject;
        DROP INDEX entries_key;
        DROP INDEX entries_timestamp;
        CREATE INDEX entries_hash ON entries (substr(hash, 1, 8)) WHERE indexed = 1;
        CREATE INDEX entries_stream ON entries (stream, timestamp) WHERE indexed = 1;
        CREATE INDEX entries_type ON entries (type, timestamp) WHERE indexed = 1;
        CREATE INDEX entries_issuer ON entries (issuer_oid, timestamp) WHERE indexed = 1 AND issuer_oid IS NOT NULL;
        CREATE INDEX entries_subject ON entries (subject_oid, timestamp) WHERE indexed = 1 AND subject_oid IS NOT NULL;
        CREATE INDEX entries_key ON entries (key, timestamp) WHERE indexed = 1 AND key IS NOT NULL;
        CREATE INDEX entries_timestamp ON entries (timestamp) WHERE indexed = 1
        """,
    ),
    (
        10,
        "candidate peers kept across restarts, one row per claim (ledger id and key)",
        """
        CREATE TABLE candidates (
            ledger_id   TEXT NOT NULL,
            public_key  TEXT NOT NULL,
            record      TEXT NOT NULL,
            sources     TEXT NOT NULL,
            status      TEXT NOT NULL,
            detail      TEXT,
            seen_ms     INTEGER NOT NULL,
            PRIMARY KEY (ledger_id, public_key)
        ) WITHOUT ROWID
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]
