"""A progress bar of pages and objects for a manual `sync` on a terminal (rich, loaded lazily)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def cycle_progress(enabled: bool) -> Iterator[Callable[[str, int], None] | None]:
    """Yields a ``progress(kind, n)`` callback, or None when there is no terminal to draw on."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

    # on stderr: stdout keeps only the result (a script may capture it)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} objects"),
                  TimeElapsedColumn(), transient=True, console=Console(stderr=True)) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(kind: str, n: int) -> None:
            if kind not in tasks:
                tasks[kind] = bar.add_task(f"reading {kind}", total=None)
            bar.advance(tasks[kind], n)

        yield progress
