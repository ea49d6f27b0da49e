"""Node configuration: one pydantic-settings class, filled from flags, ``LEDGER_*`` env and TOML.

Precedence, highest first: command-line flags, environment (``LEDGER_PORT``,
``LEDGER_LIMITS__MAX_BATCH``), the TOML file given with ``--config``, defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from protocol.limits import Limits
from protocol.models import LedgerId, Stream
from protocol.records import Url
from protocol.serving import ServerLimits

_PROTOCOL_LIMITS = Limits()


def _header_safe(value: SecretStr) -> SecretStr:
    if not re.fullmatch(r"[!-~]+", value.get_secret_value()):
        raise ValueError("must be printable ASCII without spaces: it is sent in an HTTP header")
    return value


HeaderToken = Annotated[SecretStr, AfterValidator(_header_safe)]  # a bearer token this node sends or accepts


class LimitSettings(BaseModel):
    """Per-node limits; each may be stricter than the protocol's, never looser."""

    max_payload_bytes: int = Field(_PROTOCOL_LIMITS.max_payload_bytes, ge=1, le=_PROTOCOL_LIMITS.max_payload_bytes)
    max_batch: int = Field(_PROTOCOL_LIMITS.max_batch, ge=1, le=_PROTOCOL_LIMITS.max_batch)
    max_query_limit: int = Field(_PROTOCOL_LIMITS.max_query_limit, ge=1, le=_PROTOCOL_LIMITS.max_query_limit)
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024,
        description="largest request body (413 beyond): a batch of max_batch typical entries fits; parsing "
        "JSON costs up to ~30 times its bytes in memory, so a larger cap lets one request cost more than it "
        "can carry",
    )  # fmt: skip
    large_body_parsers: int = Field(
        2, ge=1, le=64, description="request bodies over 64 KiB parsed at once; more wait their turn"
    )
    max_body_values: int = Field(
        250_000, ge=1000, le=10_000_000,
        description="values a request body over 64 KiB may hold, bounded before parsing by counting ',', '[' "
        "and '{' (413 beyond): parse time and memory grow with values, not bytes; a batch of max_batch typical "
        "entries holds tens of thousands. Pages pushed by signed peers are not counted",
    )  # fmt: skip

    def protocol(self) -> Limits:
        """These limits as the protocol package's Limits."""
        return Limits(
            max_payload_bytes=self.max_payload_bytes,
            max_batch=self.max_batch,
            max_query_limit=self.max_query_limit,
        )


class PeerSettings(BaseModel):
    """A peer from configuration: where it is and the key its ledger is pinned to."""

    url: Url
    ledger_id: LedgerId
    public_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    mode: Literal["pull", "push", "both"] = "both"


class SyncSettings(BaseModel):
    """How the sync engine works."""

    interval_s: float = Field(5.0, gt=0, le=3600, description="periodic sync per peer")
    poll_peers: int = Field(
        8, ge=1, le=10_000,
        description="periodic rounds per interval_s in all: with more peers each is polled less often "
        "(live head streams and triggers still start rounds at once)",
    )  # fmt: skip
    page_size: int = Field(1000, ge=1, le=_PROTOCOL_LIMITS.max_batch)
    verify: Literal["checkpoint", "full"] = "checkpoint"
    max_concurrency: int = Field(4, ge=1, le=64, description="peers synced at once")
    timeout_s: float = Field(10.0, gt=0, le=300, description="per request to a peer")
    retries: int = Field(3, ge=0, le=10, description="attempts per request beyond the first")
    backoff_max_s: float = Field(60.0, gt=0, le=3600, description="cap of the per-peer backoff")
    stale_after_s: float = Field(
        86_400.0, gt=0, le=365 * 86_400,
        description="a peer failing for this long (since its last success, or since it was added) is marked "
        "stale and left out of automatic sync; 'ledger-node sync --run --peer ID' tries it again",
    )  # fmt: skip
    request_window_s: float = Field(60.0, gt=0, le=3600, description="accepted clock skew of signed requests")
    live: bool = Field(True, description="subscribe to peers' head streams for immediate pulls")
    replicate: Literal["all", "peers"] = Field(
        "all",
        description="which ledgers to pin and store: all = every ledger an admitted peer vouches for"
        " (transitive replication), peers = only the ledgers of this node's own peers",
    )
    max_vouched_ledgers: int = Field(
        1000, ge=0, le=1_000_000, description="ledgers one peer may get pinned here by listing them in its heads"
    )


class ConflictSettings(BaseModel):
    """How concurrent writes to one key are resolved in the state view (the same on every node)."""

    strategy: Literal["last-write-wins", "source-priority", "manual", "merge"] = "last-write-wins"
    source_priority: list[LedgerId] = Field([], description="ledger ids, most trusted first")
    merge_handler: str = Field("json-merge", description="a registered merge handler")


class DiscoverySettings(BaseModel):
    """How the node finds others and lets itself be found."""

    advertise_url: str | None = Field(None, description="the URL others reach this node at; default http://host:port")
    name: str | None = Field(None, max_length=64, description="a readable name for the record; default ledger_id")
    region: str = Field("", max_length=64)
    registry_urls: list[str] = Field([], description="registries to register with, tried in order")
    heartbeat_s: float = Field(10.0, gt=0, le=3600, description="heartbeat interval (jittered)")
    bootstrap: list[str] = Field([], description="node URLs to connect to on start")
    mdns: bool = Field(False, description="announce and browse _ledger._tcp.local.")
    mdns_interfaces: list[str] | None = Field(None, description="addresses for mDNS; unset = all")
    peer_exchange: bool = Field(True, description="learn nodes from peers' /network/ledgers")
    auto_admit: bool = Field(
        False,
        description="admit every verified candidate (introductions, mDNS, registry, peer exchange) as a peer"
        " without an operator decision; only for a closed network whose every member is trusted",
    )
    max_candidates: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="candidate claims kept (saved); when full, expired claims go, then a configured source's "
        "claim replaces the oldest introduced one, else a new introduction is refused (peers and refusals stay)",
    )
    candidate_ttl_s: float = Field(
        7 * 86_400.0, gt=0, le=365 * 86_400,
        description="a candidate claim nobody proposed again for this long may be dropped to make room",
    )  # fmt: skip
    registry_token: HeaderToken | None = Field(
        None, description="enrolment token the registry operator issued for this ledger id; sent on registration"
    )
    interval_s: float = Field(15.0, gt=0, le=3600, description="discovery round (registry, exchange, admission)")

    @model_validator(mode="before")
    @classmethod
    def _no_auto_peer(cls, data: Any) -> Any:
        if isinstance(data, dict) and "auto_peer" in data:
            raise ValueError("auto_peer was replaced by auto_admit (default false); see docs/discovery.md")
        return data


class TrustSettings(BaseModel):
    """Whom this node syncs with and queries, by the trust graph."""

    required: bool = Field(False, description="sync only with peers and ledgers trusted enough")
    sync_threshold: float = Field(0.5, ge=0, le=1)
    query_threshold: float = Field(0.3, ge=0, le=1)
    max_depth: int = Field(4, ge=1, le=10, description="longest trust path considered")
    max_per_author: int = Field(
        1000, ge=1, le=1_000_000,
        description="attestations held per author (one per target, the newest); more for new targets are refused",
    )  # fmt: skip


class RefSettings(BaseModel):
    """Cross-ledger references in meta.refs."""

    strict: bool = Field(False, description="refuse local appends whose references cannot be verified now")
    retry_s: float = Field(10.0, gt=0, le=86_400, description="how often pending references are retried")
    max_depth: int = Field(5, ge=1, le=20, description="deepest GET /ledger/entries/{id}/refs may follow")
    concurrency: int = Field(4, ge=1, le=64, description="references looked up at once, by the background resolver")
    lookup_timeout_s: float = Field(5.0, gt=0, le=300, description="limit of one fetch of a referenced entry")
    deadline_s: float = Field(
        30.0, gt=0, le=3600, description="limit of resolving all references of one entry; then they stay pending"
    )
    max_queued: int = Field(
        10_000, ge=1, le=1_000_000, description="lookups queued at most; the rest wait in the store for the retry"
    )


class AccessSettings(BaseModel):
    """Who may use the client API without a credential, and how fast anyone may call it (docs/access.md)."""

    public_read: bool = Field(True, description="reads (entries, stats, state, sync status, trust) need no credential")
    public_query: bool = Field(False, description="GET /network/query needs no credential (it costs peers' work)")
    rate_per_s: float = Field(5000, gt=0, le=1e7, description="requests per second per credential (token bucket)")
    burst: int = Field(10_000, ge=1, le=10**8, description="bucket size per credential")
    anonymous_rate_per_s: float = Field(100, gt=0, le=1e7, description="per client address, without a credential")
    anonymous_burst: int = Field(200, ge=1, le=10**8, description="bucket size per client address")
    peer_rate_per_s: float = Field(2000, gt=0, le=1e7, description="signed node-to-node requests per peer ledger id")
    peer_burst: int = Field(4000, ge=1, le=10**8, description="bucket size per peer ledger id")


class NetSettings(BaseModel):
    """The outbound client: what it reads, how long it waits, how many connections, which URLs."""

    max_response_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024,
        description="largest answer read from another node or a registry, counted after gzip inflation",
    )  # fmt: skip
    connect_timeout_s: float = Field(5.0, gt=0, le=300, description="to open a connection")
    read_timeout_s: float = Field(10.0, gt=0, le=300, description="longest wait for the next bytes of an answer")
    stream_idle_s: float = Field(
        40.0, gt=15, le=3600, description="a head stream silent this long is dead (peers send a keep-alive every 15 s)"
    )
    max_per_peer: int = Field(4, ge=1, le=64, description="connections to one origin at once (requests)")
    max_connections: int = Field(100, ge=1, le=10_000, description="request connections at once, all origins")
    live_gap_s: float = Field(
        0.25, ge=0, le=60, description="least time from a sync round that took no entries to the next round"
    )
    allow_private: bool = Field(
        False,
        description="contact loopback, link-local and private addresses even when no operator configured the "
        "URL (closed local networks, tests)",
    )


class ConsoleSettings(BaseModel):
    """The browser console at ``/`` and its live feed ``/console/events`` (docs/console.md)."""

    enabled: bool = Field(
        True, description="serve the console page at / (GET / with Accept: application/json answers links either way)"
    )
    snapshot_s: float = Field(3.0, ge=0.5, le=300, description="seconds between status snapshots pushed to consoles")
    probe_timeout_s: float = Field(
        2.0,
        gt=0,
        le=30,
        description="limit of one reachability probe of a known node (its /network/info) made for a snapshot",
    )
    max_probed: int = Field(32, ge=0, le=256, description="known nodes probed per snapshot at most (peers first)")
    max_streams: int = Field(
        64, ge=1, le=10_000, description="console event streams open at once; more are refused (429) until one closes"
    )


class TaskSettings(BaseModel):
    """How the node's background loops are restarted after an unexpected error (``node.supervise``)."""

    restart_initial_s: float = Field(1.0, gt=0, le=3600, description="first delay before restarting a crashed loop")
    restart_max_s: float = Field(60.0, gt=0, le=86_400, description="cap of the doubling restart delay")


class _Loadable(BaseSettings):
    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @classmethod
    def load(cls, config: Path | None = None, **flags: Any) -> Self:
        """Build settings from flags (None = not given), the environment and an optional TOML file."""
        given = {name: value for name, value in flags.items() if value is not None}
        if config is None:
            return cls(**given)
        if not config.is_file():
            raise FileNotFoundError(f"{config}: config file not found")

        class FromFile(cls):  # type: ignore[misc,valid-type]
            model_config = SettingsConfigDict(toml_file=config)

        return FromFile(**given)


class StoreLocation(_Loadable):
    """Where the database is, for offline tools (verify, export, import) that need nothing else."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("data")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "ledger.db"


class NodeSettings(StoreLocation):
    """Everything a node process needs to know; built once in ``cli.py`` and passed down."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", env_nested_delimiter="__", extra="forbid")

    ledger_id: LedgerId = Field(description="this node's ledger id, e.g. node-a")
    host: str = "127.0.0.1"
    port: int = Field(8700, ge=0, le=65535)
    key_file: Path | None = Field(None, description="Ed25519 key file; default <data_dir>/node.key")
    admin_token: HeaderToken | None = Field(
        None, description="bootstrap credential with every scope (actor admin-token); unset = only issued tokens"
    )
    verify_on_start: Literal["fast", "chain", "full"] = "chain"
    durability: Literal["normal", "full"] = Field(
        "full", description="full: fsync every commit; normal: survive process crashes, not power loss"
    )
    streams: list[Stream] | None = Field(None, description="allowed stream names; unset = any valid name")
    max_group_entries: int = Field(5000, ge=1, le=100_000, description="entries per group commit")
    index_max_lag: int = Field(
        50_000, ge=1000, le=1_000_000,
        description="committed entries the secondary indexes may lag behind before appends and ingests wait"
        " (queries see every committed entry either way)",
    )  # fmt: skip
    limits: LimitSettings = LimitSettings()
    server: ServerLimits = ServerLimits()
    peers: list[PeerSettings] = []
    sync: SyncSettings = SyncSettings()
    conflicts: ConflictSettings = ConflictSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    trust: TrustSettings = TrustSettings()
    refs: RefSettings = RefSettings()
    access: AccessSettings = AccessSettings()
    net: NetSettings = NetSettings()
    console: ConsoleSettings = ConsoleSettings()
    backup_dir: Path | None = Field(
        None, description="where POST /admin/backup writes backups (one new directory each); unset = refused"
    )
    tasks: TaskSettings = TaskSettings()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_libraries: bool = Field(False, description="let libraries (aiosqlite) log at debug level too")

    @property
    def key_path(self) -> Path:
        return self.key_file if self.key_file is not None else self.data_dir / "node.key"
