"""What Python 3.12 has and syncd, on 3.11, needs: ``itertools.batched``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(iterable: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of ``n`` items from ``iterable`` (the last one shorter), without holding more."""
    it = iter(iterable)
    while batch := list(islice(it, n)):
        yield batch
