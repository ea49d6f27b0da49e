"""Typed application keys shared by the app factory and the handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from node.access.credentials import Credentials
from node.access.limits import CallerLimits
from node.interop.discovery import Discovery
from node.interop.federation import Federation
from node.interop.refs import References
from node.interop.trust import TrustGraph
from node.ledger.service import Ledger
from node.metrics import Metrics
from node.net.client import Outbound
from node.net.peers import PeerDirectory
from node.settings import NodeSettings
from node.storage.contract import AuditRepository
from node.supervise import Supervisor
from node.sync.conflicts import StateView
from node.sync.engine import SyncEngine
from node.sync.pages import PageAnswers
from protocol.requests import ReplayGuard


@dataclass
class Lifecycle:
    """Whether the node is serving; /ready reads it."""

    ready: bool = False
    started_ms: int = 0


SETTINGS = web.AppKey("settings", NodeSettings)
LEDGER = web.AppKey("ledger", Ledger)
PAGES = web.AppKey("pages", PageAnswers)
METRICS = web.AppKey("metrics", Metrics)
NET = web.AppKey("net", Outbound)
PEERS = web.AppKey("peers", PeerDirectory)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
SYNC = web.AppKey("sync", SyncEngine)
REPLAY = web.AppKey("replay", ReplayGuard)
STATE = web.AppKey("state", StateView)
DISCOVERY = web.AppKey("discovery", Discovery)
TRUST = web.AppKey("trust", TrustGraph)
FEDERATION = web.AppKey("federation", Federation)
REFS = web.AppKey("refs", References)
CREDENTIALS = web.AppKey("credentials", Credentials)
LIMITS = web.AppKey("limits", CallerLimits)
AUDIT = web.AppKey("audit", AuditRepository)
TASKS = web.AppKey("tasks", Supervisor)
