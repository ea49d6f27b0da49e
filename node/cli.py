"""``ledger-node``: run a node, make keys, and work with a node's ledger from the shell.

Commands that talk to a running node (append, query, get, stats, and the operator commands) take
``--url`` (default ``$LEDGER_URL``, else http://127.0.0.1:8700; it needs a scheme) and ``--token``
(default ``$LEDGER_TOKEN``, else ``$LEDGER_ADMIN_TOKEN``); commands that work on a data directory
(verify, export, import) open the database themselves. Every failure is
one line on stderr and a non-zero exit: 1 for errors, 2 for usage, 3 when verification fails.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import orjson
from aiohttp import web
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import node
from node.api.context import DISCOVERY, METRICS
from node.app import build_app
from node.backup import DB_NAME, KEY_NAME, MANIFEST_NAME, NOT_CARRIED, backup, restore
from node.client import ClientError, NodeClient
from node.errors import NodeError, StoreCorrupted
from node.keys import create_key_file, load_key_file
from node.ledger.transfer import export_ledger, import_ledger
from node.ledger.verify import Mode, verify_store
from node.lock import DataDirLock
from node.operator import TOKEN_HELP
from node.operator import add_commands as add_operator_commands
from node.recover import Recovered, recover_own
from node.settings import NetSettings, NodeSettings, StoreLocation, SyncSettings
from node.storage.sqlite import open_sqlite
from node.storage.sqlite.scan import held_ledgers
from protocol.errors import ProtocolError
from protocol.models import EntryDraft
from protocol.serving import ConnectionGuard, GuardedRunner
from protocol.signing import fingerprint
from protocol.terminal import run_command, url_problem

log = logging.getLogger("node.cli")  # not __name__: it is __main__ under python -m
DEFAULT_URL = "http://127.0.0.1:8700"
URL_HELP = f"node URL (default $LEDGER_URL, else {DEFAULT_URL})"
EXIT_ERROR, EXIT_CORRUPTED = 1, 3
stderr = Console(stderr=True)
log = logging.getLogger("node.cli")
SHUTDOWN_REQUESTS_S = 2.0  # for requests in flight at SIGTERM (aiohttp waits up to twice this)


class Failure(Exception):
    """A one-line failure for the user, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> None:
    run_command(lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        if getattr(args, "url", None) is not None:
            _check_url(args.url)
        args.func(args)
    except Failure as exc:
        _fail(str(exc), exc.code)
    except StoreCorrupted as exc:
        _fail(f"store corrupted: {exc}", EXIT_CORRUPTED)
    except BrokenPipeError:
        raise
    except (NodeError, ProtocolError, ClientError, OSError) as exc:
        _fail(str(exc))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "config"
        _fail(f"invalid configuration: {field}: {error['msg']}")
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _check_url(url: str) -> None:
    problem = url_problem(url)
    if problem is not None:
        raise Failure(f"node URL {url!r} (--url or $LEDGER_URL) {problem}", 2)


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    print(f"ledger-node: error: {message}", file=sys.stderr)
    raise SystemExit(code)


# --- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> None:
    settings = NodeSettings.load(
        args.config, ledger_id=args.ledger_id, data_dir=args.data_dir, host=args.host, port=args.port,
        verify_on_start=args.verify, log_level=args.log_level_flag,
    )  # fmt: skip
    logging.getLogger().setLevel(settings.log_level.upper())
    if not settings.log_libraries:  # aiosqlite logs every statement at debug level
        logging.getLogger("aiosqlite").setLevel(logging.INFO)
    asyncio.run(serve(settings))


async def serve(settings: NodeSettings) -> None:
    """Run the node until SIGINT or SIGTERM, then stop cleanly (the writer drains first)."""
    # requests in flight at the signal get SHUTDOWN_REQUESTS_S; then each service closes within its own deadline
    app = build_app(settings)
    guard = ConnectionGuard(settings.server, log, app[METRICS].registry, "ledger")
    runner = GuardedRunner(app, settings.server, guard, handle_signals=False, access_log=None,
                           shutdown_timeout=SHUTDOWN_REQUESTS_S)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    faulthandler.enable()  # SIGABRT, SIGSEGV: every thread's stack on stderr
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        await runner.setup()  # opens and verifies the ledger
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        runner.app[DISCOVERY].start(f"http://{host}:{port}")  # no-op when already announced
        print(f"ledger-node listening on http://{host}:{port} ledger_id={settings.ledger_id}", flush=True)
        await stop.wait()
        log.info("shutting down ledger=%s: pending appends are committed, peers and streams closed", settings.ledger_id)
    finally:
        await runner.cleanup()
    log.info("stopped ledger=%s", settings.ledger_id)


def dump_tasks() -> None:
    """SIGUSR1: every asyncio task's stack on stderr (where a node that does not stop is waiting)."""
    tasks = asyncio.all_tasks()
    print(f"--- {len(tasks)} asyncio tasks ---", file=sys.stderr, flush=True)
    for task in tasks:
        print(f"task {task.get_name()}: {task.get_coro()!r}", file=sys.stderr)
        task.print_stack(limit=20, file=sys.stderr)
    sys.stderr.flush()


# --- keys --------------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> None:
    keys = create_key_file(args.out)
    print(f"wrote {args.out} (mode 0600)")
    print(f"public_key  {keys.public_key.hex()}")
    print(f"fingerprint {fingerprint(keys.public_key)}")


# --- client commands ---------------------------------------------------------------------------


def _client(args: argparse.Namespace, work: Callable[[NodeClient], Coroutine[Any, Any, None]]) -> None:
    async def run() -> None:
        async with NodeClient(args.url, args.token) as client:
            await work(client)

    asyncio.run(run())


def cmd_append(args: argparse.Namespace) -> None:
    if args.file is not None:
        return _append_file(args)
    if args.stream is None or args.type is None:
        raise Failure("append needs --stream and --type (or --file)", 2)
    draft: dict[str, Any] = {"stream": args.stream, "type": args.type, "payload": _json_arg(args.payload, "--payload")}
    for name in ("issuer_oid", "subject_oid", "key", "id"):
        if getattr(args, name) is not None:
            draft[name] = getattr(args, name)
    if args.meta is not None:
        draft["meta"] = _json_arg(args.meta, "--meta")

    async def one(client: NodeClient) -> None:
        _print_json(await client.post("/ledger/entries", draft))

    _client(args, one)


def _json_arg(text: str, flag: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Failure(f"{flag}: not valid JSON ({exc})", 2) from exc


def _append_file(args: argparse.Namespace) -> None:
    """Every draft of the file is checked first (nothing is sent when one is bad); then the drafts go in
    batches of ``--batch``, each committed whole or not at all. When the node refuses a batch, what was
    committed before it stays, and the message says through which line and how to resume."""
    drafts = [(n, d) for n, d in read_drafts(args.file) if n >= args.from_line]
    if not drafts:
        raise Failure(f"{args.file}: nothing at or after line {args.from_line}")

    async def send(client: NodeClient) -> None:
        done, last = 0, None
        with _progress("append", len(drafts)) as advance:
            for start in range(0, len(drafts), args.batch):
                batch = drafts[start : start + args.batch]
                try:
                    answer = await client.post("/ledger/entries", [draft for _, draft in batch])
                except ClientError as exc:
                    raise Failure(_refused_batch(args.file, drafts, start, batch, str(exc))) from exc
                done += answer["count"]
                last = answer["entries"][-1]
                advance(len(batch))
        assert last is not None
        print(f"appended {done} entries; head seq {last['seq']} hash {last['hash']} "
              f"(lines {drafts[0][0]}..{drafts[-1][0]})")  # fmt: skip

    _client(args, send)


def _refused_batch(path: Path, drafts: list[tuple[int, Any]], start: int, batch: list[tuple[int, Any]],
                   problem: str) -> str:  # fmt: skip
    """Which lines are committed, which line the node refused, and the command that resumes."""
    index = re.match(r"entries\[(\d+)\]", problem)
    clash = re.match(r"id (\S+) is already used", problem)  # the node's 409 names the id, not its place
    where = ""
    if index and int(index.group(1)) < len(batch):
        where = f"line {batch[int(index.group(1))][0]}: "
        problem = problem[index.end() :].lstrip(".: ")
    elif clash:
        lines = [n for n, draft in drafts if str(draft.get("id", "")).lower() == clash.group(1).lower()]
        here = next((n for n, _ in batch if n in lines), None)
        if here is not None:
            where = f"line {here}: "
            earlier = [n for n in lines if n < here]
            problem += f" (line {earlier[0]} of the file has it too)" if earlier else ""
    first = batch[0][0]
    if start == 0:
        committed = f"nothing was committed (the batch from line {first} is refused whole)"
    else:
        committed = (f"lines {drafts[0][0]}..{drafts[start - 1][0]} are committed, nothing from line {first} on; "
                     f"after fixing the file, resume with --from-line {first}")  # fmt: skip
    return f"{path}: {where}{problem}; {committed}"


def read_drafts(path: Path) -> list[tuple[int, Any]]:
    """(line number, draft) for every entry of a JSON array or JSON Lines file, each checked against the
    draft schema first; the first bad one fails with its line (its 1-based position in an array)."""
    raw = path.read_bytes()
    numbered: list[tuple[int, Any]] = []
    if raw.lstrip().startswith(b"["):
        try:
            items = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Failure(f"{path}: not a JSON array of entries ({exc})") from exc
        numbered, unit = list(enumerate(items, 1)), "entry"
    else:
        unit = "line"
        for number, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((number, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise Failure(f"{path}: line {number}: not valid JSON ({exc}); nothing was sent") from exc
    if not numbered:
        raise Failure(f"{path}: no entries")
    for number, draft in numbered:
        try:
            EntryDraft.model_validate(draft)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            field = ".".join(str(part) for part in error["loc"]) or "entry"
            raise Failure(f"{path}: {unit} {number}: {field}: {error['msg']}; nothing was sent") from exc
    return numbered


def cmd_query(args: argparse.Namespace) -> None:
    """Entries as JSON Lines; with ``--network`` from GET /network/query (this node and its trusted peers,
    every remote entry verified), each peer's answer summarised on stderr."""
    names = ["stream", "type", "issuer_oid", "subject_oid", "key", "since", "until", "limit"]
    if args.network:
        path = "/network/query"
        params = {name: getattr(args, name) for name in names}
        params.update(ledgers=args.ledgers or args.ledger_id, min_trust=args.min_trust, timeout_ms=args.timeout_ms)
    else:
        path = "/ledger/entries"
        params = {name: getattr(args, name) for name in [*names, "ledger_id", "ledgers", "order"]}

    async def work(client: NodeClient) -> None:
        cursor = None
        while True:
            page = await client.get(path, {**params, "cursor": cursor})
            for entry in page["entries"]:
                sys.stdout.buffer.write(orjson.dumps(entry) + b"\n")
            for peer, answer in page.get("peers", {}).items():
                detail = " ".join(f"{k}={v}" for k, v in answer.items() if k != "status")
                print(f"peer {peer}: {answer['status']} {detail}".rstrip(), file=sys.stderr)
            for ledger_id, state in page.get("ledgers", {}).items():
                if state != "ok":
                    print(f"ledger {ledger_id}: {state}", file=sys.stderr)
            cursor = page["next_cursor"]
            if cursor is None or not args.all:
                break
        sys.stdout.flush()

    _client(args, work)


def cmd_refs(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        _print_json(await client.get(f"/ledger/entries/{args.entry_id}/refs", {"depth": args.depth}))

    _client(args, work)


def cmd_state(args: argparse.Namespace) -> None:
    """One key's state (heads, winner, conflicts), the digest of the whole view, or every key's state."""

    async def work(client: NodeClient) -> None:
        if args.digest:
            _print_json(await client.get("/ledger/state/digest"))
        elif args.key is not None:
            _print_json(await client.get(f"/ledger/state/{quote(args.key, safe='')}"))
        else:
            after = None
            while True:
                page = await client.get("/ledger/state", {"after": after, "limit": 1000})
                for state in page["states"]:
                    sys.stdout.buffer.write(orjson.dumps(state) + b"\n")
                after = page["next_after"]
                if after is None:
                    break
            sys.stdout.flush()

    _client(args, work)


def cmd_get(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        _print_json(await client.get(f"/ledger/entries/{args.entry_id}"))

    _client(args, work)


def cmd_stats(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        _print_json(await client.get("/ledger/stats"))

    _client(args, work)


def cmd_health(args: argparse.Namespace) -> None:
    """Exit 0 when the node answers /health and /ready; for container healthchecks (no token needed)."""

    async def run() -> None:
        async with NodeClient(args.url, timeout_s=args.timeout) as client:
            await client.get("/health")
            await client.get("/ready")

    asyncio.run(run())
    print(f"ok: {args.url} is healthy and ready")


def _print_json(data: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


# --- offline commands --------------------------------------------------------------------------


def _location(args: argparse.Namespace) -> StoreLocation:
    location = StoreLocation.load(args.config, data_dir=args.data_dir)
    if not location.db_path.is_file():
        raise Failure(f"{location.db_path}: no ledger database here")
    return location


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=stderr, disable=not stderr.is_terminal, transient=False,
    )  # fmt: skip
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def cmd_verify(args: argparse.Namespace) -> None:
    location = _location(args)
    mode: Mode = "full" if args.full else "fast" if args.fast else "chain"
    total = sum(ledger.head_seq for ledger in held_ledgers(location.db_path))
    with _progress(f"verify ({mode})", total) as advance:
        reports = verify_store(location.db_path, mode, progress=advance)
    for r in reports:
        print(
            f"ok ledger={r.ledger_id} mode={r.mode} seq={r.from_seq + 1}..{r.through_seq} entries={r.entries}"
            f" checkpoints={r.checkpoints} signatures={r.signatures} seconds={r.seconds:.2f}"
        )
    refused = [f"ledger {r.ledger_id} {reason}" for r in reports for reason in r.refused_by_peers]
    if refused:
        for line in refused:
            print(f"refused by peers: {line}", file=sys.stderr)
        raise Failure(
            f"{len(refused)} entries listed above are validly signed but break the value rules; no peer or importer "
            "accepts them or anything after them (docs/protocol.md section 2)",
            EXIT_CORRUPTED,
        )


def cmd_export(args: argparse.Namespace) -> None:
    location = _location(args)
    ledgers = held_ledgers(location.db_path)
    total = next((x.head_seq for x in ledgers if x.ledger_id == args.ledger or (args.ledger is None and x.is_local)), 0)
    out: IO[bytes]
    with _progress("export", total) as advance:
        if args.out is None or str(args.out) == "-":
            count = export_ledger(location.db_path, args.ledger, sys.stdout.buffer, advance)
        else:
            with args.out.open("wb") as out:
                count = export_ledger(location.db_path, args.ledger, out, advance)
    print(f"exported {count} entries", file=sys.stderr)


def cmd_import(args: argparse.Namespace) -> None:
    location = StoreLocation.load(args.config, data_dir=args.data_dir)

    async def work() -> None:
        with DataDirLock(location.data_dir), args.file.open("rb") as handle:
            async with open_sqlite(location.db_path) as storage:
                with _progress("import", None) as advance:
                    report = await import_ledger(storage, handle, full=args.full, progress=advance)
        print(f"imported ledger={report.ledger_id} entries={report.imported} "
              f"already_held={report.skipped} head={report.head_seq}")  # fmt: skip

    asyncio.run(work())


def cmd_backup(args: argparse.Namespace) -> None:
    if args.on_node:

        async def ask(client: NodeClient) -> None:
            made = await client.post("/admin/backup")
            if args.json:
                return _print_json(made)
            own = next(x for x in made["ledgers"] if x["local"])
            print(f"the node backed up {made['ledger_id']} into {made['path']} (on its host): own head seq "
                  f"{own['head_seq']} hash {own['head_hash']}")  # fmt: skip

        return _client(args, ask)
    if args.out is None:
        raise Failure("backup needs --out DIR (or --on-node, into the node's backup_dir)", 2)
    location = _location(args)
    key_path = args.key_file or location.data_dir / KEY_NAME
    manifest = backup(location.db_path, key_path, args.out)
    own = next(x for x in manifest.ledgers if x.local)
    print(f"backed up {manifest.ledger_id} into {args.out}: {DB_NAME} ({manifest.db_bytes} bytes, "
          f"{len(manifest.ledgers)} ledger(s), own head seq {own.head_seq} hash {own.head_hash}), "
          f"{KEY_NAME} (mode 0600), {MANIFEST_NAME}")  # fmt: skip
    print(f"restore with: ledger-node restore {args.out} --data-dir <new data dir>")


def _recover(data_dir: Path, db_path: Path, ledger_id: str, urls: list[str]) -> None:
    """Take the own entries written after the backup back from the peers that hold them."""
    keys = load_key_file(data_dir / KEY_NAME)

    async def work() -> list[Recovered]:
        async with open_sqlite(db_path) as storage:
            return await recover_own(storage, keys, ledger_id, urls, net=NetSettings(), sync=SyncSettings())

    for got in asyncio.run(work()):
        stopped = f" (stopped: {got.problem})" if got.problem else ""
        print(f"from {got.url}: took {got.entries} entries of {ledger_id} written after the backup; "
              f"head seq {got.head_seq}{stopped}")  # fmt: skip


def cmd_restore(args: argparse.Namespace) -> None:
    for url in args.from_peer:  # before anything is written
        problem = url_problem(url)
        if problem is not None:
            raise Failure(f"--from-peer {url!r} {problem}", 2)
    location = StoreLocation.load(args.config, data_dir=args.data_dir)
    with DataDirLock(location.data_dir):
        manifest = restore(args.backup, location.data_dir)
        mode: Mode = "full" if args.full else "chain"
        total = sum(x.head_seq for x in manifest.ledgers)
        with _progress(f"verify ({mode})", total) as advance:
            reports = verify_store(location.db_path, mode, progress=advance)
        own = next(x for x in manifest.ledgers if x.local)
        print(f"restored {manifest.ledger_id} into {location.data_dir}: head seq {own.head_seq} hash {own.head_hash}, "
              f"{len(reports)} ledger(s) verified ({mode})")  # fmt: skip
        if args.from_peer:
            _recover(location.data_dir, location.db_path, manifest.ledger_id, args.from_peer)
    config = f" --config {args.config}" if args.config else ""
    print(f"start it with: ledger-node run --ledger-id {manifest.ledger_id} --data-dir {location.data_dir}{config}")
    print(f"WARNING: the restored node is {manifest.ledger_id} itself (its key, its ledger, what it knew of its "
          f"peers). Start it only in place of {manifest.ledger_id}, once the original is stopped for good; never "
          f"beside it: two nodes with one key fork ledger {manifest.ledger_id} at its peers.")  # fmt: skip
    sets = "the ledger id, data directory and settings file" if args.config else "only the ledger id and data directory"
    print(
        f"The command above sets {sets}; add what the original ran with from flags or the environment"
        f"{'' if args.config else ' (or its --config file)'}: {', '.join(NOT_CARRIED)}."
    )


# --- parser ------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger-node",
        description="A node of a network of signed, hash-chained ledgers.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 verification failed. "
        "Configuration: flags > LEDGER_* environment > --config TOML > defaults.",
    )
    parser.set_defaults(log_level="info")
    parser.add_argument("--version", action="version", version=f"ledger-node {node.__version__}")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a node", description="Open, verify and serve the node's ledger.")
    run.add_argument("--config", type=Path, help="TOML file with node settings")
    run.add_argument("--ledger-id", help="this node's ledger id (LEDGER_LEDGER_ID)")
    run.add_argument("--data-dir", type=Path, help="directory for ledger.db and node.key (default ./data)")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on; 0 picks a free one (default 8700)")
    run.add_argument("--verify", choices=["fast", "chain", "full"], help="verification on start (default chain)")
    run.add_argument("--log-level", dest="log_level_flag", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)

    keygen = sub.add_parser("keygen", help="create an Ed25519 key file (mode 0600)")
    keygen.add_argument("--out", type=Path, default=Path("data/node.key"), help="where (default data/node.key)")
    keygen.set_defaults(func=cmd_keygen)

    token = os.environ.get("LEDGER_TOKEN") or os.environ.get("LEDGER_ADMIN_TOKEN")
    url = os.environ.get("LEDGER_URL") or DEFAULT_URL

    def client(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--url", default=url, help=URL_HELP)
        command.add_argument("--token", default=token, help=TOKEN_HELP)
        return command

    append = client("append", "append one entry (flags) or many (--file)")
    append.add_argument("--stream")
    append.add_argument("--type")
    append.add_argument("--payload", default="{}", help="payload as a JSON object")
    append.add_argument("--meta", help="meta as a JSON object")
    append.add_argument("--issuer-oid")
    append.add_argument("--subject-oid")
    append.add_argument("--key", help="logical record key")
    append.add_argument("--id", help="entry id (UUID); default: assigned by the node")
    append.add_argument(
        "--file", type=Path,
        help="JSON array or JSON Lines of entry drafts: every line is checked before anything is sent (an error "
        "names the line); then batches of --batch lines are committed in order, each whole or not at all. When the "
        "node refuses a batch, the message says which lines are committed and the --from-line that resumes "
        "without appending any line twice",
    )  # fmt: skip
    append.add_argument("--batch", type=int, default=1000, help="entries per request with --file (default 1000)")
    append.add_argument("--from-line", type=int, default=1, help="with --file: start at this line (to resume)")
    append.set_defaults(func=cmd_append)

    query = client("query", "query entries; prints JSON Lines (--network: also the trusted peers)")
    for name in ("ledger-id", "stream", "type", "issuer-oid", "subject-oid", "key"):
        query.add_argument(f"--{name}")
    query.add_argument("--ledgers", help="comma-separated ledger ids: entries of any of them")
    query.add_argument("--network", action="store_true",
                       help="federated: this node and its trusted peers, every remote entry verified; each peer's "
                       "answer (ok, timeout, error, untrusted) on stderr")  # fmt: skip
    query.add_argument("--min-trust", type=float, help="with --network: only peers trusted at least this much")
    query.add_argument("--timeout-ms", type=int, default=2000, help="with --network: per peer (default 2000)")
    query.add_argument("--since", type=int, help="timestamp >= since (ms)")
    query.add_argument("--until", type=int, help="timestamp < until (ms)")
    query.add_argument("--order", choices=["asc", "desc"], default="asc")
    query.add_argument("--limit", type=int, default=100, help="entries per page (max 1000)")
    query.add_argument("--all", action="store_true", help="follow cursors to the last page")
    query.set_defaults(func=cmd_query)

    get = client("get", "get one entry by id")
    get.add_argument("entry_id")
    get.set_defaults(func=cmd_get)

    stats = client("stats", "show the ledger's head and counters")
    stats.set_defaults(func=cmd_stats)
    refs = client("refs", "an entry's cross-ledger references with their status")
    refs.add_argument("entry_id")
    refs.add_argument("--depth", type=int, default=1, help="hops to follow (default 1, max 64)")
    refs.set_defaults(func=cmd_refs)
    state = client("state", "the state view: one key (heads, winner, conflicts), --digest, or every key (JSON Lines)")
    state.add_argument("key", nargs="?", help="a logical record key (default: every key)")
    state.add_argument("--digest", action="store_true", help="the hash of the whole state view")
    state.set_defaults(func=cmd_state)
    # JSON already; the flag is accepted so every reading command takes it
    for reading in (query, get, stats, refs, state):
        reading.add_argument("--json", action="store_true", help="JSON output (the default for this command)")
    health = client("health", "exit 0 when the node answers /health and /ready (for healthchecks)")
    health.add_argument("--timeout", type=float, default=3, help="seconds to wait for both answers (default 3)")
    health.set_defaults(func=cmd_health)
    add_operator_commands(sub, url, token)

    def offline(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config", type=Path, help="TOML file (for data_dir)")
        command.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
        return command

    verify = offline("verify", "verify a data directory's ledgers (read-only)")
    group = verify.add_mutually_exclusive_group()
    group.add_argument("--full", action="store_true", help="also check every entry signature")
    group.add_argument("--fast", action="store_true", help="only from the last verified checkpoint")
    verify.set_defaults(func=cmd_verify)

    export = offline("export", "export a ledger as JSON Lines")
    export.add_argument("--ledger", help="ledger id (default: the node's own)")
    export.add_argument("--out", type=Path, help="output file (default or -: stdout)")
    export.set_defaults(func=cmd_export)

    imp = offline("import", "verify and import a JSON Lines export (node must be stopped)")
    imp.add_argument("file", type=Path)
    imp.add_argument("--full", action="store_true", help="also check every entry signature")
    imp.set_defaults(func=cmd_import)

    back = offline("backup", "copy the database (consistent, while the node runs) and the key into a directory")
    back.add_argument("--out", type=Path, help="a new or empty directory for the backup")
    back.add_argument(
        "--on-node",
        action="store_true",
        help="ask the node at --url instead (POST /admin/backup, admin): it writes into its backup_dir",
    )
    back.add_argument("--url", default=url, help=URL_HELP)
    back.add_argument("--token", default=token, help=TOKEN_HELP)
    back.add_argument("--json", action="store_true", help="with --on-node: the API's answer")  # fmt: skip
    back.add_argument("--key-file", type=Path, help="the node's key file (default <data dir>/node.key)")
    back.set_defaults(func=cmd_backup)

    res = offline("restore", "bring a backup into a new data directory, key included, and verify it")
    res.add_argument("backup", type=Path, help="a directory written by 'ledger-node backup'")
    res.add_argument("--full", action="store_true", help="also check every entry signature")
    res.add_argument("--from-peer", action="append", metavar="URL", default=[],
                     help="a peer of the node (repeatable): take back the node's own entries it holds beyond the "
                     "backup, each verified under the node's key and chained to the restored head, so the node "
                     "continues its ledger instead of forking it")  # fmt: skip
    res.set_defaults(func=cmd_restore)
    return parser


if __name__ == "__main__":
    main()
