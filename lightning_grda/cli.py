"""The ``lightning-grda`` command: a LightningCLI with the pack's models, datamodules and configs.

``lightning-grda fit`` with no arguments trains the embedded default (``configs/digits.yaml``: a small CNN on
scikit-learn's handwritten digits, pruned by gRDA, on CPU), then evaluates the test split and prints the sparsity
table. Any other config is given with ``--config``; every option can be overridden on the command line.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.core import LightningDataModule, LightningModule

__all__ = ["COMMANDS", "CONFIG_DIR", "DEFAULT_CONFIG", "GRDACLI", "main", "run"]

CONFIG_DIR = Path(__file__).parent / "configs"
"""The folder of the shipped configs (``configs/`` in the repository is a link to it)."""

DEFAULT_CONFIG = CONFIG_DIR / "digits.yaml"
"""The config every subcommand starts from: the embedded digits run."""


COMMANDS: dict[str, str] = {
    "diagnose": "lightning_grda.commands.diagnose",
}
"""The pack's own subcommands beside LightningCLI's ``fit``/``validate``/``test``/``predict``: name to module.

Each module (under :mod:`lightning_grda.commands`) has ``HELP`` (one line) and ``main(args: list[str]) -> int``,
which parses its own arguments, calls plain functions that do the work, prints, and returns the exit status.
"""

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


class GRDACLI(LightningCLI):
    """LightningCLI with two additions.

    * The datamodule's ``num_classes`` and the channel count of its ``input_shape`` are passed to the model's
      ``num_classes`` and ``in_channels`` (so a CIFAR-100 config need not repeat 100). Every datamodule of the pack
      has both attributes; a model used with this command takes both arguments.
    * ``fit`` ends by evaluating the test split with the final weights (the ones whose sparsity is reported), so
      ``trainer.callback_metrics`` holds ``test_acc`` and ``sparsity``. ``--test_after_fit false`` skips it.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add ``--test_after_fit`` and the datamodule-to-model links."""
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="fit only: evaluate the test split after training"
        )
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments(
            "data.input_shape", "model.init_args.in_channels", compute_fn=_channels, apply_on="instantiate"
        )

    def after_fit(self) -> None:
        """Evaluate the test split with the final weights, unless ``--test_after_fit false``."""
        if self.config["fit"].get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=True)


def _channels(input_shape: Any) -> int:
    return int(input_shape[0])


def main(args: list[str] | None = None, run: bool = True) -> Any:
    """Run the ``lightning-grda`` command.

    Args:
        args: the command-line arguments (``None``: ``sys.argv[1:]``), e.g. ``["fit", "--trainer.max_epochs=2"]``.
        run: run the subcommand; with ``False`` only parse and instantiate (``args`` then has no subcommand).

    Returns:
        For ``fit``/``validate``/``test``/``predict`` (and ``run=False``), the LightningCLI object, whose
        ``trainer``, ``model`` and ``datamodule`` a caller can inspect; for the pack's own subcommands
        (:data:`COMMANDS`), their exit status.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if run and argv and argv[0] in COMMANDS:
        return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    default = {"default_config_files": [str(DEFAULT_CONFIG)]}
    subcommands = LIGHTNING_SUBCOMMANDS
    parser_kwargs: dict[str, Any] = {name: dict(default) for name in subcommands} if run else dict(default)
    if run:
        parser_kwargs["description"] = _description()
    return GRDACLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        parser_kwargs=parser_kwargs,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=True,
    )


def _description() -> str:
    lines = [
        "lightning-grda: prune while you train, with the gRDA optimizer (Chao et al., NeurIPS 2020) for PyTorch "
        f"Lightning. Every run starts from the embedded default config ({DEFAULT_CONFIG.name}: digits, on CPU); "
        f"--config layers another on top (the paper's setups are in {CONFIG_DIR}).",
        "Subcommands: fit, validate, test, predict (LightningCLI's)",
    ]
    for name, module in COMMANDS.items():
        lines.append(f"  {name}: {importlib.import_module(module).HELP}")
    return "\n".join(lines)


def run() -> None:
    """The console script and ``python -m lightning_grda``: :func:`main` on ``sys.argv``, exiting 0 on success.

    (A console script exits with whatever its function returns, so it cannot be :func:`main`, which returns the
    LightningCLI object.)
    """
    result = main()
    if isinstance(result, int) and not isinstance(result, bool):
        sys.exit(result)
