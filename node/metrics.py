"""Prometheus metrics of one node, on a registry of its own (several nodes can share a process)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from node.storage.contract import StoredEntry


class Metrics:
    """The node's metrics; ``render()`` gives the text exposition for ``/metrics``."""

    def __init__(self, own_ledger_id: str) -> None:
        self.own_ledger_id = own_ledger_id
        self.registry = CollectorRegistry()
        r = self.registry
        self.entries_appended = Counter("ledger_entries_appended", "Entries appended to the own ledger", registry=r)
        self.append_batches = Counter("ledger_append_batches", "Committed writer groups", registry=r)
        self.head_seq = Gauge("ledger_head_seq", "Seq of the own ledger's head", registry=r)
        self.index_lag = Gauge(
            "ledger_index_lag_entries",
            "Committed entries (of every ledger held) not yet in the secondary indexes; queries see them anyway",
            registry=r,
        )
        self.verify_seconds = Gauge(
            "ledger_verify_seconds", "Duration of the last store verification", ["mode"], registry=r
        )
        self.http_requests = Counter(
            "ledger_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "ledger_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r,
        )

        self.sync_received = Counter(
            "ledger_sync_entries_received", "Entries received from peers", ["peer"], registry=r
        )
        self.sync_sent = Counter("ledger_sync_entries_sent", "Entries pushed to peers", ["peer"], registry=r)
        self.sync_rejects = Counter(
            "ledger_sync_rejects", "Pages or records refused from peers", ["peer", "reason"], registry=r
        )
        self.sync_skipped = Counter(
            "ledger_sync_pulls_skipped", "Pulls skipped: another peer's round was pulling that ledger", registry=r
        )
        self.sync_failures = Counter("ledger_sync_failures", "Failed sync rounds", ["peer", "error"], registry=r)
        self.sync_retries = Gauge("ledger_sync_retries", "Request retries made per peer", ["peer"], registry=r)
        self.sync_lag = Gauge("ledger_sync_lag", "Entries a peer has that we lack", ["peer", "ledger"], registry=r)
        self.outbound_requests = Counter(
            "ledger_outbound_requests", "HTTP requests this node made (sync, discovery, queries, ...)", registry=r
        )
        self.outbound_bytes = Counter(
            "ledger_outbound_bytes",
            "Bytes of this node's outbound requests: sent (request line, headers set, body), received "
            "(answer headers and body inflated, stream lines)",
            ["direction"],
            registry=r,
        )
        self.discovery_rejects = Counter(
            "ledger_discovery_rejects", "Discovered records refused", ["source", "reason"], registry=r
        )
        self.task_crashes = Counter(
            "ledger_task_crashes", "Unexpected errors that ended a background loop (restarted)", ["task"], registry=r
        )
        self.conflicts = Counter("ledger_conflicts", "Conflicts detected", ["kind"], registry=r)
        self.propagation_seconds = Histogram(
            "ledger_sync_propagation_seconds",
            "Time from an entry's timestamp to its commit here",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30, 300),
            registry=r,
        )

    async def on_append(self, rows: Sequence[StoredEntry]) -> None:
        """An after_append hook: count entries committed to the own ledger and move its head gauge.

        The hook sees every commit, replicas' too; those belong to other ledgers (counted by
        ``ledger_sync_entries_received``) and change neither figure.
        """
        if rows[0].ledger_id != self.own_ledger_id:
            return
        self.entries_appended.inc(len(rows))
        self.append_batches.inc()
        self.head_seq.set(rows[-1].seq)

    def render(self) -> bytes:
        return generate_latest(self.registry)
