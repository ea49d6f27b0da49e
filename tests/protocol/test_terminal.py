"""Tables of both command-line programs: no column is ever dropped, no cell cut."""

from __future__ import annotations

import io

from rich.console import Console

from protocol.terminal import print_table

URL = "http://a-peer-with-a-rather-long-host-name-that-does-not-answer.invalid:8700/behind/a/long/prefix"
ERROR = f"cannot reach {URL}: connection refused [errno 111] after 3 attempts, next in 60 s"
PEERS = ["peer", "url", "mode", "source", "state", "failures", "lag", "last error"]
ROW = ["node-far", URL, "both", "config", "backing-off", 3, 0, ERROR]
HASH = "9f" * 32


def render(columns: list[str], rows: list[list[object]], width: int, terminal: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    print_table("peers", columns, rows, console)
    return out.getvalue()


def column(text: str, index: int, rule: str = "│") -> str:
    """The cells of one column (0-based) of a rendered table, its lines joined (rule "┃": the header)."""
    body = [line for line in text.splitlines() if line.startswith(rule)]
    return " ".join(line.split(rule)[index + 1].strip() for line in body).strip()


def test_not_on_a_terminal_every_cell_is_printed_whole_on_one_line() -> None:
    text = render(PEERS, [ROW, ["node-b", "http://127.0.0.1:8702", "pull", "registry", "idle", 0, 0, None]], 80,
                  terminal=False)  # fmt: skip
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == PEERS
    assert f"│ {URL} │" in text and f"│ {ERROR} │" in text
    assert len({len(line) for line in text.splitlines()[1:]}) == 1  # every table line as wide as the widest row
    assert not any(line != line.rstrip() for line in text.splitlines())


def test_on_a_narrow_terminal_long_cells_fold_and_no_column_is_dropped() -> None:
    for width in (80, 120):
        text = render(PEERS, [ROW], width, terminal=True)
        assert max(len(line) for line in text.splitlines()) <= width, text
        assert [column(text, i, "┃") for i in range(len(PEERS))] == PEERS, text
        assert column(text, 1).replace(" ", "") == URL and column(text, 7).replace(" ", "") == ERROR.replace(" ", "")


def test_on_a_terminal_hashes_and_timestamps_keep_their_line_while_there_is_room() -> None:
    rows: list[list[object]] = [[7, "2026-12-02 03:13:14", "admin", "pins.set", f"ledger_id=node-q key={HASH} " * 2]]
    text = render(["id", "at (UTC)", "actor", "action", "detail"], rows, 80, terminal=True)
    assert "│ 2026-12-02 03:13:14 │" in text, text
    text = render(["field", "value"], [["head", HASH], ["data dir", "/var/lib/ledger"]], 80, terminal=True)
    assert f"│ {HASH} │" in text, text


def test_a_table_without_rows_says_none_in_one_line() -> None:
    for terminal in (False, True):
        assert render(PEERS, [], 80, terminal) == "peers: none\n"
