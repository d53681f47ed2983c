"""Print beside Lightning's live progress bar without being overwritten by it.

A fresh ``rich.console.Console()`` writes straight to the terminal while Lightning's ``RichProgressBar`` redraws
itself: the bar's next redraw moves the cursor up over what was printed and erases its last lines (the end-of-fit
sparsity table lost its Total row in an 80-column terminal), and a line printed mid-epoch is glued onto the bar.
Lightning's own callbacks print through the bar instead; so does this pack, with :func:`echo` (any rich renderable:
tables, text) and :func:`say` (one plain line):

* ``RichProgressBar``: its console, which prints above the live display (rich's ``Live`` redirects it);
* ``TQDMProgressBar``: ``tqdm.write``, which clears the bars, writes the line and redraws them;
* no progress bar, or a stopped one: a plain rich console.

Both print on global rank zero only.
"""

from __future__ import annotations

import io
import shutil
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from rich import get_console
from rich.console import Console, RenderableType

__all__: list[str] = []


def _console_of(trainer: pl.Trainer | None) -> Console | None:
    """The console of the trainer's ``RichProgressBar`` (None for any other bar, or none)."""
    bar = getattr(trainer, "progress_bar_callback", None) if trainer is not None else None
    if not isinstance(bar, RichProgressBar):
        return None
    # `RichProgressBar._console` is private: fall back to rich's global console, which is the one the bar
    # configures and draws on (`rich.reconfigure` + `rich.get_console()` in `RichProgressBar._init_progress`).
    console = getattr(bar, "_console", None)
    return console if isinstance(console, Console) else get_console()


def _tqdm_active(trainer: pl.Trainer | None) -> bool:
    bar = getattr(trainer, "progress_bar_callback", None) if trainer is not None else None
    return isinstance(bar, TQDMProgressBar) and bar.is_enabled


def echo(trainer: pl.Trainer | None, renderable: RenderableType) -> None:
    """Print a rich renderable (a table, text) through ``trainer``'s progress bar, on global rank zero only.

    Args:
        trainer: the trainer whose progress bar is live, or None (rich's global console, which is also the one a
            ``RichProgressBar`` draws on).
        renderable: what to print.
    """
    if trainer is not None and not trainer.is_global_zero:
        return
    if _tqdm_active(trainer):
        from tqdm import tqdm

        width = shutil.get_terminal_size().columns
        buffer = io.StringIO()
        Console(file=buffer, width=width, force_terminal=False, color_system=None).print(renderable)
        tqdm.write(buffer.getvalue().rstrip("\n"))
        return
    console = _console_of(trainer)
    (console if console is not None else get_console()).print(renderable)


def say(trainer: pl.Trainer | None, message: str, **kwargs: Any) -> None:
    """Print one plain line through ``trainer``'s progress bar (no rich markup), on global rank zero only.

    Args:
        trainer: as in :func:`echo`.
        message: the line; square brackets are printed as they are.
        **kwargs: passed to ``rich.text.Text`` (e.g. ``style="yellow"``).
    """
    from rich.text import Text

    echo(trainer, Text(message, **kwargs))
