"""``python -m lightning_grda``: the ``lightning-grda`` command."""

from lightning_grda.cli import run

if __name__ == "__main__":
    run()
