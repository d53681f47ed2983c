import fcntl
import io
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from types import SimpleNamespace

import pyte
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from rich.console import Console
from rich.table import Table

from lightning_grda._console import echo, say


def run_in_terminal(args: list[str], columns: int, cwd, timeout: float = 600.0) -> tuple[int, list[str]]:
    """Run ``args`` in a pseudo-terminal ``columns`` wide; return its exit status and the screen it leaves.

    The screen is tall enough that nothing scrolls off, so every line a redraw erased is really gone.
    """
    rows = 2000
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = dict(os.environ, COLUMNS=str(columns), LINES=str(rows), TERM="xterm-256color")
    for key in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(key, None)
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True)
    os.close(slave)
    data, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                data += chunk
            elif process.poll() is not None:
                break
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    screen = pyte.Screen(columns, rows)
    pyte.ByteStream(screen).feed(data)
    return process.wait(), [line.rstrip() for line in screen.display if line.strip()]


def test_the_end_of_fit_table_and_the_lr_drop_line_survive_the_progress_bar_in_80_columns(tmp_path):
    args = [
        sys.executable,
        "-m",
        "lightning_grda",
        "fit",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=2",
        "--trainer.limit_val_batches=1",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        "--test_after_fit=false",
        "--trainer.callbacks+=lightning_grda.callbacks.OneTimeLRDrop",
        "--trainer.callbacks.epoch=1",
    ]
    status, lines = run_in_terminal(args, columns=80, cwd=tmp_path)
    text = "\n".join(lines)
    assert status == 0, text[-3000:]
    total = [i for i, line in enumerate(lines) if line.startswith("│ Total ")]
    assert total, text[-3000:]
    assert lines[total[0] + 1].startswith("└"), text[-3000:]  # the bottom border too
    assert "100 % zero" in text  # the note under the table
    drops = [line for line in lines if "OneTimeLRDrop: learning rate x0.1 at epoch 1" in line]
    assert drops, text[-3000:]
    assert all(line.startswith("OneTimeLRDrop") for line in drops)  # on a line of its own, not glued to the bar


def _trainer(bar=None, rank_zero: bool = True) -> SimpleNamespace:
    return SimpleNamespace(progress_bar_callback=bar, is_global_zero=rank_zero)


def _table() -> Table:
    table = Table(title="T")
    table.add_column("a")
    table.add_row("Total")
    return table


def test_echo_without_a_bar_prints_to_stdout(capsys):
    echo(_trainer(), _table())
    say(None, "a [plain] line")
    out = capsys.readouterr().out
    assert "Total" in out
    assert "a [plain] line" in out  # no rich markup


def test_echo_prints_on_global_rank_zero_only(capsys):
    echo(_trainer(rank_zero=False), _table())
    say(_trainer(rank_zero=False), "nothing")
    assert capsys.readouterr().out == ""


def test_echo_goes_through_tqdm_write_with_a_tqdm_bar(monkeypatch):
    import tqdm

    written = []
    monkeypatch.setattr(tqdm.tqdm, "write", staticmethod(lambda text, *a, **k: written.append(text)))
    say(_trainer(TQDMProgressBar()), "OneTimeLRDrop: x0.1")
    echo(_trainer(TQDMProgressBar()), _table())
    assert written[0] == "OneTimeLRDrop: x0.1"
    assert "Total" in written[1]


class _Recorder:
    def __init__(self):
        self.printed = []

    def print(self, renderable):
        self.printed.append(renderable)


def test_echo_uses_the_rich_bar_console(capsys):
    bar, buffer = RichProgressBar(), io.StringIO()
    bar._console = Console(file=buffer)
    say(_trainer(bar), "line")
    assert buffer.getvalue() == "line\n"
    assert capsys.readouterr().out == ""


def test_echo_falls_back_to_rich_global_console_without_the_private_attribute(monkeypatch):
    import lightning_grda._console as module

    bar, shared = RichProgressBar(), _Recorder()
    del bar._console
    monkeypatch.setattr(module, "get_console", lambda: shared)
    say(_trainer(bar), "line")
    assert [str(r) for r in shared.printed] == ["line"]
