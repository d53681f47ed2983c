"""Start a model from trained weights: ``lightning-grda fit --init_from PATH``, and :func:`load_weights` for notebooks.

Only the model's weights are loaded: no optimizer state, no callback or loop state (the epoch count starts at 0).
It is not a resume (``--ckpt_path``): GRDA's dual average starts at the loaded weights, at the first step.

The file is read with :func:`lightning_grda.weights.read_state_dict` (a Lightning ``.ckpt`` of any LightningModule,
a plain state dict, a module saved whole, a ``.safetensors`` file). Its keys are matched to the model's:

* as they are, when they match best;
* else with one leading name component added or stripped on every key, when that makes more keys match: a bare
  backbone's state dict (``features.0.weight``) loads into a LightningModule that holds it as ``backbone``
  (``backbone.features.0.weight``), a ``.ckpt`` of a module wrapped as ``model.`` loads into the bare module, and
  DDP's ``module.`` or ``torch.compile``'s ``_orig_mod.`` prefixes are dropped;
* a layer pruned with masks (``weight_orig`` and ``weight_mask``, as GReg or ``ModelPruning`` save it) gives its
  masked weight to a model whose layer is not pruned.

Strict loading (the default) refuses any missing key, unexpected key or shape that differs, with one error that
lists the first of each, before any training. Non-strict loading (``--init_strict false``, e.g. for a new classifier
head) loads what matches and warns naming every key it skipped.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from lightning_grda.weights import read_state_dict

__all__ = ["WeightsMatch", "load_weights", "match_weights"]

_SHOWN = 5  # keys listed per kind in messages


class WeightsMatch:
    """How a file's state dict matches a model's: what loads, and what is missing, unexpected or of another shape.

    Attributes:
        matched: model key to the tensor to load into it (shapes agree).
        missing: model keys the file does not have.
        unexpected: file keys (after renaming) the model does not have.
        shapes: ``(key, shape in the file, shape in the model)`` for keys in both whose shapes differ.
        rename: how the file's keys were renamed to the model's, in words (``""`` when they were used as they are).
    """

    def __init__(
        self,
        matched: dict[str, Tensor],
        missing: list[str],
        unexpected: list[str],
        shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        rename: str,
    ) -> None:
        self.matched = matched
        self.missing = missing
        self.unexpected = unexpected
        self.shapes = shapes
        self.rename = rename

    @property
    def exact(self) -> bool:
        """Every model key is loaded and every file key is used."""
        return not (self.missing or self.unexpected or self.shapes)

    def describe(self, limit: int | None = _SHOWN) -> str:
        """The mismatches in one paragraph: counts and the first ``limit`` keys of each kind (None: all)."""
        parts = []
        for what, keys in (("missing from the file", self.missing), ("unexpected (not in the model)", self.unexpected)):
            if keys:
                parts.append(f"{len(keys)} {what}: {_first(keys, limit)}")
        if self.shapes:
            shapes = [f"{k} {a} in the file vs {b} in the model" for k, a, b in self.shapes]
            parts.append(f"{len(self.shapes)} with another shape: {_first(shapes, limit)}")
        return "; ".join(parts)


def _first(items: list[str], limit: int | None) -> str:
    if limit is None or len(items) <= limit:
        return ", ".join(items)
    return ", ".join(items[:limit]) + f" and {len(items) - limit} more"


def _fold_masks(state: Mapping[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Replace ``X_orig``/``X_mask`` pairs by ``X = X_orig * X_mask`` where the model wants ``X``."""
    out = dict(state)
    for key in [k for k in state if k.endswith("_orig")]:
        base = key[: -len("_orig")]
        mask = base + "_mask"
        if mask in state and base not in state and key not in model_keys:
            out[base] = state[key] * state[mask]
            del out[key], out[mask]
    return out


def _common_head(keys: Iterable[str]) -> str | None:
    """The first name component every key shares (``"model."``), or None."""
    heads = {k.split(".", 1)[0] + "." if "." in k else None for k in keys}
    return heads.pop() if len(heads) == 1 and None not in heads else None


def _candidates(keys: list[str], model_keys: set[str]) -> list[tuple[str, dict[str, str]]]:
    """Ways to rename the file's keys: as they are, a shared head stripped (repeatedly), the model's head added."""
    out = [("", {k: k for k in keys})]
    current = {k: k for k in keys}
    stripped = []
    while (head := _common_head(current.values())) is not None:
        stripped.append(head)
        current = {orig: k[len(head) :] for orig, k in current.items()}
        out.append((f"stripped {''.join(stripped)!r}", dict(current)))
    model_head = _common_head(model_keys)
    if model_head is not None:
        for label, mapping in list(out):
            added = {orig: model_head + k for orig, k in mapping.items()}
            out.append(((label + " and " if label else "") + f"added {model_head!r}", added))
    return out


def match_weights(model: nn.Module, state: Mapping[str, Tensor]) -> WeightsMatch:
    """Match a state dict's keys and shapes to ``model``'s, renaming the keys if that makes more of them match.

    Args:
        model: the module to load into.
        state: the weights (e.g. from :func:`lightning_grda.weights.read_state_dict`).

    Returns:
        The :class:`WeightsMatch`: what would load, and every mismatch.

    Example:
        >>> backbone = nn.Sequential(nn.Linear(2, 3))
        >>> wrapped = nn.Module()
        >>> wrapped.backbone = nn.Sequential(nn.Linear(2, 3))
        >>> match = match_weights(wrapped, backbone.state_dict())
        >>> sorted(match.matched), match.rename, match.exact
        (['backbone.0.bias', 'backbone.0.weight'], "added 'backbone.'", True)
    """
    target = model.state_dict()
    model_keys = set(target)
    state = _fold_masks(state, model_keys)
    best: tuple[int, int, str, dict[str, str]] | None = None
    for i, (label, mapping) in enumerate(_candidates(list(state), model_keys)):
        hits = sum(new in model_keys for new in mapping.values())
        if best is None or hits > best[0]:
            best = (hits, i, label, mapping)
    assert best is not None
    _, _, rename, mapping = best
    renamed = {new: state[orig] for orig, new in mapping.items()}
    matched, shapes = {}, []
    for key, value in renamed.items():
        if key not in model_keys:
            continue
        if tuple(value.shape) != tuple(target[key].shape):
            shapes.append((key, tuple(value.shape), tuple(target[key].shape)))
        else:
            matched[key] = value
    missing = [k for k in target if k not in renamed]
    unexpected = [k for k in renamed if k not in model_keys]
    return WeightsMatch(matched, missing, unexpected, shapes, rename)


def load_weights(
    model: nn.Module, path: str | os.PathLike[str], strict: bool = True, *, weights_only: bool = True
) -> WeightsMatch:
    """Load the weights stored in ``path`` into ``model``, in place, and nothing else.

    Args:
        model: the module to load into (a LightningModule, or any ``nn.Module``).
        path: a Lightning checkpoint, a state dict or module saved with ``torch.save``, or a ``.safetensors`` file.
        strict: refuse any missing key, unexpected key or differing shape (default). ``False`` loads what matches
            and warns naming what it skipped; it is still an error if nothing matches.
        weights_only: read torch files with torch's safe unpickler (see :mod:`lightning_grda.weights`).

    Returns:
        The :class:`WeightsMatch` that was loaded.

    Raises:
        ValueError: the file cannot be read (the message names it), or its keys do not match the model's (the message
            lists the first missing and unexpected keys and the shapes that differ).
    """
    if not Path(path).exists():
        raise ValueError(
            f"Invalid init_from: {str(path)!r}; no such file (relative paths start at {os.getcwd()}). Train the model "
            "that writes it first (the digits GReg configs start from trained/digits_sgd.ckpt, which "
            "`lightning-grda fit --config configs/digits_sgd.yaml` writes), or pass --init_from null"
        )
    state = read_state_dict(path, weights_only=weights_only)
    match = match_weights(model, state)
    how = f" (keys {match.rename})" if match.rename else ""
    if not match.matched:
        raise ValueError(
            f"Invalid init_from: {str(path)!r}; none of its {len(state)} weights match the model's: {match.describe()}"
        )
    if not match.exact:
        if strict:
            raise ValueError(
                f"Invalid init_from: {str(path)!r}; its weights do not match the model's{how}: {match.describe()}. "
                "Load what matches with --init_strict false (e.g. for a new classifier head)."
            )
        warnings.warn(
            f"init_from {str(path)!r}: loaded {len(match.matched)} of the model's {len(model.state_dict())} "
            f"weights{how}; skipped {match.describe(limit=None)}",
            UserWarning,
            stacklevel=2,
        )
    with torch.no_grad():
        model.load_state_dict(match.matched, strict=False)
    return match
