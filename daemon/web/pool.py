"""Read-only connections to the detection store, one lent per request.

Connections come from :func:`daemon.store.schema.open_store` with ``read_only=True`` (``mode=ro``: this
process cannot write the store). A missing store or a failing query is a :class:`StoreError`, which the
server answers with 503, so ``birdd web`` may start before the detector has created the store.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.errors import StoreError
from daemon.store.schema import open_store

log = logging.getLogger(__name__)

POOL_SIZE = 4
"""connections kept open between requests (more are opened under load and closed after)"""


class StorePool:
    """A small pool of read-only store connections; safe to share between request threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._idle: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one request; an SQLite error inside the block becomes :class:`StoreError`."""
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = open_store(self.path, read_only=True)
        try:
            yield conn
        except sqlite3.Error as exc:
            conn.close()
            log.warning("store query failed: %s", exc)
            raise StoreError(f"{self.path}: query failed: {exc}") from None
        except BaseException:
            conn.close()
            raise
        if self._idle.qsize() < POOL_SIZE:
            self._idle.put(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close the idle connections."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
