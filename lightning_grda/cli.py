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

from lightning_grda import _cli_report
from lightning_grda._cli_errors import ONE_LINE, OneLineParser, refuse_random_weights, report, traceback_requested
from lightning_grda._console import echo, say
from lightning_grda._resume import check_resume, explicit_model_options, read_checkpoint
from lightning_grda.init_weights import load_weights

__all__ = ["COMMANDS", "CONFIG_DIR", "DEFAULT_CONFIG", "GRDACLI", "main", "run"]

CONFIG_DIR = Path(__file__).parent / "configs"
"""The folder of the shipped configs (``configs/`` in the repository is a link to it)."""

DEFAULT_CONFIG = CONFIG_DIR / "digits.yaml"
"""The config every subcommand starts from: the embedded digits run."""


COMMANDS: dict[str, str] = {
    "diagnose": "lightning_grda.commands.diagnose",
    "export": "lightning_grda.commands.export",
    "tune-c": "lightning_grda.commands.tune_c",
}
"""The pack's own subcommands beside LightningCLI's ``fit``/``validate``/``test``/``predict``: name to module.

Each module (under :mod:`lightning_grda.commands`) has ``HELP`` (one line) and ``main(args: list[str]) -> int``,
which parses its own arguments, calls plain functions that do the work, prints, and returns the exit status.
"""

LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


class GRDACLI(LightningCLI):
    """LightningCLI with these additions.

    * The datamodule's ``num_classes`` and the channel count of its ``input_shape`` are passed to the model's
      ``num_classes`` and ``in_channels`` (so a CIFAR-100 config need not repeat 100). Every datamodule of the pack
      has both attributes; a model used with this command takes both arguments.
    * ``fit`` ends by evaluating the test split with the final weights (the ones whose sparsity is reported), so
      ``trainer.callback_metrics`` holds ``test_acc`` and ``sparsity``. ``--test_after_fit false`` skips it. Then it
      prints where the logs, the config and the checkpoints were written.
    * ``--ckpt_path`` is checked before the checkpoint's model hyperparameters replace the model configuration
      (:func:`lightning_grda._resume.check_resume`): an empty or unreadable file, an explicit model option that the
      checkpoint contradicts, or a gRDA checkpoint resumed with another optimizer is a one-line error (exit 2).
    * ``--init_from PATH`` loads only the model's weights from a file right after the classes are instantiated,
      before any training (:mod:`lightning_grda.init_weights`); ``--init_strict false`` loads what matches.

    And a few guards: ``validate``/``test``/``predict`` refuse random weights (no ``--ckpt_path``); when the
    config's ``optimizer`` replaces the model's GRDA, one line says which optimizer runs; with
    ``--trainer.enable_checkpointing false`` the config's ``ModelCheckpoint`` callbacks are dropped (Lightning would
    refuse the combination); ``v_num`` is not shown on the progress bar.
    """

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse as LightningCLI does, then check ``--ckpt_path`` against the options given."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not path or subcommand not in self._subcommand_parsers:
            return
        argv = sys.argv[1:] if args is None else args
        named = explicit_model_options(argv) if isinstance(argv, (list, tuple)) else set()
        config = self.config[subcommand]
        defaults = self._subcommand_parsers[subcommand].get_defaults()
        try:
            check_resume(
                read_checkpoint(path),
                str(path),
                model=_plain(config.get("model")),
                defaults=_plain(defaults.get("model")),
                named=named,
                optimizer=_plain(config.get("optimizer")),
            )
        except ValueError as err:
            self._subcommand_parsers[subcommand].error(str(err))

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Add ``--test_after_fit`` and the datamodule-to-model links."""
        parser.add_argument(
            "--test_after_fit", type=bool, default=True, help="fit only: evaluate the test split after training"
        )
        parser.add_argument("--init_from", type=str | None, default=None, help=_INIT_FROM_HELP)
        parser.add_argument("--init_strict", type=bool, default=True, help="init_from: refuse any key mismatch")
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments(
            "data.input_shape", "model.init_args.in_channels", compute_fn=_channels, apply_on="instantiate"
        )

    def instantiate_classes(self) -> None:
        """Instantiate the classes, then load ``--init_from``'s weights into the model (no optimizer exists yet)."""
        super().instantiate_classes()
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.get("init_from"):
            if config.get("ckpt_path"):  # the resume would overwrite the weights: one of the two is a mistake
                raise ValueError(f"Invalid init_from: {config['init_from']!r}; give it or --ckpt_path, not both")
            load_weights(self.model, config["init_from"], strict=config.get("init_strict", True))

    def before_instantiate_classes(self) -> None:
        """Refuse ``validate``/``test``/``predict`` of random weights, before anything is built."""
        refuse_random_weights(self.config, self.subcommand)
        _cli_report.drop_checkpoints_when_disabled(self._get(self.config, "trainer"))

    def after_instantiate_classes(self) -> None:
        """Say which optimizer runs instead of the model's; no ``v_num`` on the bar; FLOPs in the model summary."""
        optimizer = self._get(self.config, "optimizer")
        if optimizer and self.subcommand in (None, "fit"):
            say(self.trainer, _cli_report.optimizer_line(self.model, optimizer))
        _cli_report.hide_version_on_bar(self.trainer)
        _cli_report.summary_input(self.model, self.datamodule, self.trainer)

    def after_fit(self) -> None:
        """Evaluate the test split with the final weights (unless ``--test_after_fit false``); say what was written."""
        if self.config["fit"].get("test_after_fit", True) and not self.trainer.interrupted:
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=True)
        table = _cli_report.written(self.trainer)
        if table is not None:
            echo(self.trainer, table)


def _plain(value: Any) -> dict[str, Any]:
    """A jsonargparse ``Namespace`` (or ``None``) as nested dicts."""
    if value is None:
        return {}
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return dict(value) if isinstance(value, dict) else {"class_path": value}


_INIT_FROM_HELP = (
    "start from the model weights in this file (a Lightning .ckpt, a state dict, a .safetensors): weights only, "
    "not a resume (see --ckpt_path)"
)


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
    _cli_report.quiet_lightning()
    if run and argv and argv[0] in COMMANDS:
        return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    default = {"default_config_files": [str(DEFAULT_CONFIG)]}
    subcommands = LIGHTNING_SUBCOMMANDS
    parser_kwargs: dict[str, Any] = {name: dict(default) for name in subcommands} if run else dict(default)
    if run:
        parser_kwargs.update(description=_description(), prog="lightning-grda")
    return GRDACLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=args,
        run=run,
        parser_kwargs=parser_kwargs,
        save_config_kwargs={"overwrite": True},
        parser_class=OneLineParser,
        auto_configure_optimizers=True,
    )


def _description() -> str:
    lines = [
        "lightning-grda: prune while you train, with the gRDA optimizer (Chao et al., NeurIPS 2020) for PyTorch "
        f"Lightning. Every run starts from the embedded default config ({DEFAULT_CONFIG.name}: digits, on CPU); "
        f"--config layers another on top (the paper's setups are in {CONFIG_DIR}).",
        "Subcommands: fit, validate, test, predict (LightningCLI's; validate/test/predict need --ckpt_path)",
    ]
    for name, module in COMMANDS.items():
        lines.append(f"  {name}: {importlib.import_module(module).HELP}")
    lines.append(
        "Errors are printed as one line; --traceback (or LIGHTNING_GRDA_TRACEBACK=1) adds the traceback. "
        "'lightning-grda fit --print_config' shows every option of the default run."
    )
    return "\n".join(lines)


def run() -> None:
    """The console script and ``python -m lightning_grda``: :func:`main` on ``sys.argv``, exiting 0 on success.

    (A console script exits with whatever its function returns, so it cannot be :func:`main`, which returns the
    LightningCLI object.) An error is printed as one line naming the option as written (exit status 2 for bad
    input, 1 otherwise); ``--traceback`` or ``LIGHTNING_GRDA_TRACEBACK=1`` also prints the traceback. See
    :mod:`lightning_grda._cli_errors`.
    """
    show_traceback, argv = traceback_requested(sys.argv[1:])
    sys.argv[1:] = argv  # without --traceback (LightningCLI reads sys.argv)
    token = ONE_LINE.set(True)
    try:
        result = main()
    except Exception as error:  # the command's one-line report; the traceback on request
        sys.exit(report(error, argv, show_traceback))
    finally:
        ONE_LINE.reset(token)
    if isinstance(result, int) and not isinstance(result, bool):
        sys.exit(result)
