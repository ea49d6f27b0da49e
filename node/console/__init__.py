"""The browser console: one HTML page, one script and one style sheet shipped with the package (no
external assets), served by ``node/api/console.py``, and the feed of snapshots it shows (``feed.py``)."""

from __future__ import annotations

from importlib import resources

# the files a browser may fetch, with their content types; nothing else under this package is served
ASSETS = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}


def asset(name: str) -> bytes:
    """The bytes of one shipped console file (KeyError for any other name)."""
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files(__name__).joinpath(name).read_bytes()
