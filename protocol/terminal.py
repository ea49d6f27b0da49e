"""What the two command-line programs (``ledger-node``, ``ledger-registry``) share about the terminal:
tables that never drop or cut a column, the service-URL check, and the quiet exit when the reader of
stdout goes away (``| head``)."""

from __future__ import annotations

import io
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn
from urllib.parse import urlsplit

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

SHORT_CELL = 20  # cells up to this wide (a "2026-12-02 03:13:14" timestamp) are kept on one line while room lasts
WRAPPED_MIN = 8  # the narrowest a column of wrapping text gets on a narrow terminal


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]],
                console: Console | None = None) -> None:  # fmt: skip
    """Print ``rows`` under ``title`` with every column, every cell whole.

    Not on a terminal (redirected, piped): each column as wide as its widest cell, nothing wrapped,
    whatever ``$COLUMNS`` says. On a terminal that is too narrow for that: one-word cells (ids,
    hashes, URLs) and short ones (timestamps) keep their column wide enough while the terminal allows
    (the widest such column gives way first); other text wraps, and a word longer than its column
    folds onto the next line. A column is never dropped and no cell is cut. No rows: one line,
    ``<title>: none``, rather than a header over nothing."""
    console = console or Console()
    if not rows:
        console.file.write(f"{title}: none\n")
        console.file.flush()
        return
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    if not console.is_terminal:
        _print_plain(console, title, columns, cells)
        return
    widths = _fitted_widths(columns, cells, console.width - (3 * len(columns) + 1))  # borders and padding
    table = Table(title=Text(title), title_justify="left")
    for column, width in zip(columns, widths, strict=True):
        table.add_column(column, overflow="fold", width=width)
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def _print_plain(console: Console, title: str, columns: Sequence[str], cells: list[list[str]]) -> None:
    natural = [_natural(column, [row[i] for row in cells]) for i, column in enumerate(columns)]
    width = max(sum(natural) + 3 * len(columns) + 1, cell_len(title))
    out = io.StringIO()
    wide = Console(file=out, width=width, color_system=None, highlight=False, markup=False, emoji=False)
    table = Table(title=Text(title), title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))
    wide.print(table)
    console.file.write("".join(line.rstrip() + "\n" for line in out.getvalue().splitlines()))
    console.file.flush()


def _natural(header: str, cells: list[str]) -> int:
    return max([cell_len(header), *(max((cell_len(line) for line in c.splitlines()), default=0) for c in cells)])


def _fitted_widths(columns: Sequence[str], cells: list[list[str]], room: int) -> list[int | None]:
    """Column widths (without padding) that fit ``room``, or Nones when every column fits as it is."""
    natural = [_natural(column, [row[i] for row in cells]) for i, column in enumerate(columns)]
    if sum(natural) <= room:
        return [None] * len(columns)
    whole = [max((cell_len(c) for c in (row[i] for row in cells) if " " not in c or cell_len(c) <= SHORT_CELL),
                 default=0) for i in range(len(columns))]  # fmt: skip
    floor = [min(n, max(WRAPPED_MIN, cell_len(c))) for n, c in zip(natural, columns, strict=True)]
    minimum = [max(w, f) for w, f in zip(whole, floor, strict=True)]
    while sum(minimum) > room and minimum != floor:  # the widest kept column gives way first
        widest = max(range(len(minimum)), key=lambda i: minimum[i] - floor[i])
        minimum[widest] = floor[widest]
    if sum(minimum) > room:
        return [max(1, room // len(columns))] * len(columns)
    widths, spare = list(minimum), room - sum(minimum)
    want = [n - m for n, m in zip(natural, minimum, strict=True)]
    total = sum(want)
    for i, more in enumerate(want):  # the rest of the room goes to the columns that want it, pro rata
        widths[i] += spare * more // total if total else 0
    return list(widths)


def url_problem(url: str) -> str | None:
    """None when ``url`` has an http or https scheme and a host; else what it needs, with the fix when
    only the scheme is missing (``127.0.0.1:8700``)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    hint = f"; write http://{url}" if "://" not in url else ""
    return f"needs http:// or https:// and a host{hint}"


def unreachable(url: str, exc: BaseException) -> str:
    """One line for a request to ``url`` that got no answer: ``cannot reach http://host:port (connection
    refused)``, in words of our own rather than the HTTP client's (its "ssl:default" says nothing about a
    plain http URL)."""
    cause = getattr(exc, "os_error", None) or exc  # aiohttp's connector errors carry the socket's error
    if isinstance(cause, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(cause, socket.gaierror):
        reason = "unknown host"
    elif isinstance(cause, TimeoutError):
        reason = "timed out"
    elif isinstance(cause, OSError) and cause.strerror:
        reason = cause.strerror[:1].lower() + cause.strerror[1:]
    else:
        reason = str(cause) or type(cause).__name__
    return f"cannot reach {url} ({reason})"


def run_command(main: Callable[[], None]) -> None:
    """Run a program's ``main``, then flush stdout here rather than at exit, so that a reader that
    went away (``| head``) is seen and answered by a quiet exit 0."""
    try:
        main()
        sys.stdout.flush()
    except BrokenPipeError:
        exit_quietly_on_closed_stdout()


def exit_quietly_on_closed_stdout() -> NoReturn:
    """The reader of stdout went away (``| head``): exit 0 without a word, as Unix tools do. stdout is
    pointed at /dev/null first, so that the interpreter's last flush of what is still buffered does not
    fail again (Python documentation, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)
