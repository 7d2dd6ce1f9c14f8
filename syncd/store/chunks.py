"""How a cycle's report entries are stored: a thousand to a row, zlib-compressed.

An entry is canonical JSON (``report.model.canonical``), which never holds a raw newline,
so a chunk is its entries joined by newlines. A 100k-user first cycle has 81k entries of
~400 bytes: as one row each they were 35 MB of a 69 MB store, and writing them (and the
commit that flushes them) took ~1 s; as chunks they are ~3 MB (level 1 compresses ~150 MB/s).
The audit hash chain is computed over the entries' text, not over this encoding.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterable, Iterator

from ..compat import batched

CHUNK = 1000


def pack(entries: Iterable[str]) -> Iterator[tuple[int, bytes]]:
    """(number of the chunk's first entry, its stored bytes), in order."""
    for i, chunk in enumerate(batched(entries, CHUNK)):
        yield i * CHUNK, zlib.compress("\n".join(chunk).encode(), 1)


def insert_chunks(conn: sqlite3.Connection, cycle_seq: int, entries: Iterable[str]) -> None:
    """Store one cycle's entries (in order) as ``entry_chunks`` rows."""
    conn.executemany(
        "INSERT INTO entry_chunks (cycle_seq, first_n, entries) VALUES (?, ?, ?)",
        ((cycle_seq, first, stored) for first, stored in pack(entries)),
    )


def unpack(stored: object) -> list[str]:
    """A chunk's entries; ``ValueError`` when the stored value is not one ``pack`` made."""
    if not isinstance(stored, bytes):
        raise ValueError(f"a chunk of entries is stored as {type(stored).__name__}, not bytes")
    try:
        return zlib.decompress(stored).decode().split("\n")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"a chunk of entries cannot be decoded ({exc})") from None
