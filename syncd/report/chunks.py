"""A report's entries a thousand to a chunk, zlib-compressed: as they are held and stored.

An entry is canonical JSON (``model.canonical``), which never holds a raw newline, so a
chunk's text is its entries joined by newlines. As one row each, a big cycle's entries were
half of the store and a good part of its commit; compressed in chunks they are a tenth of
that (BENCHMARKS.md).
The audit hash chain is computed over the entries' text, not over this encoding.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator

from ..compat import batched

CHUNK = 1000


def text_of(entries: list[str]) -> bytes:
    """A chunk's text: its entries, one per line."""
    return "\n".join(entries).encode()


def compress(text: bytes) -> bytes:
    return zlib.compress(text, 1)


def pack(entries: Iterable[str]) -> Iterator[tuple[int, bytes]]:
    """(number of the chunk's first entry, its stored bytes), in order."""
    for i, chunk in enumerate(batched(entries, CHUNK)):
        yield i * CHUNK, compress(text_of(chunk))


def hash_lines(sha: hashlib._Hash, texts: Iterable[bytes]) -> hashlib._Hash:
    """``sha`` updated with each chunk's entries, each followed by a newline (the entries'
    digest a report's header records, ``audit.entries_hash``)."""
    for text in texts:
        sha.update(text)
        sha.update(b"\n")
    return sha


def unpack(stored: object) -> list[str]:
    """A chunk's entries; ``ValueError`` when the stored value is not one ``pack`` made."""
    if not isinstance(stored, bytes):
        raise ValueError(f"a chunk of entries is stored as {type(stored).__name__}, not bytes")
    try:
        return zlib.decompress(stored).decode().split("\n")
    except (zlib.error, UnicodeDecodeError) as exc:
        raise ValueError(f"a chunk of entries cannot be decoded ({exc})") from None
