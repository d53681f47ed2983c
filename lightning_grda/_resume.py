"""Checks of ``--ckpt_path`` before the CLI resumes: the file is readable and agrees with what was asked.

LightningCLI resumes with the checkpoint's model hyperparameters, replacing the model configuration, even values
given explicitly. That is right for the options nobody gave, but an explicit option that the checkpoint contradicts
would be dropped silently (``--model.init_args.backbone digits_cnn --ckpt_path <a resnet20 checkpoint>`` would train
a resnet20), so :func:`check_resume` refuses it. Trainer and data options are not in the checkpoint's model
hyperparameters and are honoured as given (``--trainer.max_epochs 40`` extends a run).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["check_resume", "explicit_model_options", "read_checkpoint"]


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a Lightning checkpoint on the CPU with torch's restricted unpickler.

    Raises:
        ValueError: If ``path`` is missing, empty (0 bytes, e.g. a write cut short) or not a readable checkpoint;
            the message names the file.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"Invalid ckpt_path: {str(path)!r} is not a file")
    if file.stat().st_size == 0:
        raise ValueError(f"Invalid ckpt_path: {str(path)!r} is empty (0 bytes): was it written completely?")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises EOFError, UnpicklingError, RuntimeError... for bad files
        raise ValueError(f"Invalid ckpt_path: {str(path)!r} could not be read as a checkpoint: {err}") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"Invalid ckpt_path: {str(path)!r} holds a {type(checkpoint).__name__}, not a checkpoint")
    return checkpoint


def explicit_model_options(argv: Iterable[str]) -> set[str]:
    """The model options named on a command line: ``class_path`` and init argument names.

    Example:
        >>> sorted(explicit_model_options(["fit", "--model.init_args.c=0.5", "--model.lr", "1", "--trainer.x=1"]))
        ['c', 'lr']
        >>> explicit_model_options(["--model", "ImageClassifier"])
        {'class_path'}
    """
    names = set()
    for token in argv:
        if not isinstance(token, str):
            continue
        if token == "--model" or token.startswith("--model="):
            names.add("class_path")
        elif token.startswith("--model."):
            key = token[len("--model.") :].split("=", 1)[0]
            key = key.removeprefix("init_args.")
            names.add(key.split(".", 1)[0])
    return names


def check_resume(
    checkpoint: Mapping[str, Any],
    path: str,
    model: Mapping[str, Any],
    defaults: Mapping[str, Any],
    named: set[str],
    optimizer: Mapping[str, Any] | None = None,
) -> None:
    """Refuse a resume whose explicit model options contradict the checkpoint, or whose optimizer cannot load it.

    An option is explicit if it is named on the command line (``named``) or differs from the default config
    (``defaults``: e.g. set by a ``--config`` file).

    Args:
        checkpoint: The loaded checkpoint (:func:`read_checkpoint`).
        path: Its path, for the messages.
        model: The parsed ``model`` option before the checkpoint's hyperparameters replace it:
            ``{"class_path": ..., "init_args": {...}}``.
        defaults: The ``model`` option of the default config, same shape.
        named: Model options named on the command line (:func:`explicit_model_options`).
        optimizer: The CLI's ``optimizer`` option (``{"class_path": ...}``), or ``None`` if the model configures
            its own.

    Raises:
        ValueError: One line naming the option, the value asked and the checkpoint's value.
    """
    _check_optimizer(checkpoint, path, optimizer)  # first: no option can make another optimizer continue this one
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    saved_class = hparams.pop("_class_path", None)
    asked_class = model.get("class_path")
    explicit_class = "class_path" in named or asked_class != defaults.get("class_path")
    if saved_class is not None and asked_class != saved_class and explicit_class:
        raise ValueError(_contradiction("model.class_path", model.get("class_path"), saved_class, path))
    asked = dict(model.get("init_args") or {})
    default = dict(defaults.get("init_args") or {}) if defaults.get("class_path") == model.get("class_path") else {}
    for name, value in asked.items():
        if name not in hparams or _same(value, hparams[name]):
            continue
        if name in named or name not in default or not _same(value, default[name]):
            raise ValueError(_contradiction(f"model.init_args.{name}", value, hparams[name], path))


def _check_optimizer(checkpoint: Mapping[str, Any], path: str, optimizer: Mapping[str, Any] | None) -> None:
    if not optimizer or not optimizer.get("class_path"):
        return
    target = str(optimizer["class_path"])
    if target.rsplit(".", 1)[-1] == "GRDA":
        return
    for state in checkpoint.get("optimizer_states") or []:
        groups = state.get("param_groups", []) if isinstance(state, Mapping) else []
        if any("c" in group and "mu" in group for group in groups):
            raise ValueError(
                f"Invalid ckpt_path: {path!r} holds a GRDA optimizer state (param groups with 'c' and 'mu') but this "
                f"run's optimizer is {target}, which cannot continue it. To train these weights with {target}, "
                "fine-tune instead of resuming: load the model weights only and start a new run."
            )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:  # e.g. tensors of different shapes
        return False


def _contradiction(option: str, asked: Any, saved: Any, path: str) -> str:
    return (
        f"Invalid {option}: {asked!r} contradicts the checkpoint {path!r}, which was trained with {saved!r}; "
        f"resuming continues that run, so drop the option (or pass {saved!r}), or fine-tune from its weights instead"
    )
