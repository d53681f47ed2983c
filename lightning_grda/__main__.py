"""``python -m lightning_grda``: the ``lightning-grda`` command."""

from lightning_grda.cli import main

if __name__ == "__main__":
    main()
