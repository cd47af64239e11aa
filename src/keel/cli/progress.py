"""The progress bar long-running commands draw on stderr (only on a terminal; nothing when piped)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

_err = Console(stderr=True, highlight=False)


def progress_bar(label: str) -> Progress:
    """A transient bar ``label ━━━━ 12/40 0:00:03``; use as a context manager."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err,
        transient=True,
        disable=not _err.is_terminal,
    )
