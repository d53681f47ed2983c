"""Argument checks shared by the whole pack: one home, one message format.

Every check raises ``ValueError(f"Invalid {name}: {value!r}; expected {what}")`` naming the argument as the user
wrote it and echoing the value, before any work is done. Booleans are refused where a number is expected
(``True`` is an ``int`` to Python, never a learning rate to a user); numpy scalars and 0-dim real tensors are
accepted as the numbers they hold.

Example:
    >>> check_real("lr", 0.1, low=0.0)
    0.1
    >>> check_real("lr", True, low=0.0)
    Traceback (most recent call last):
    ...
    ValueError: Invalid lr: True; expected a finite real number >= 0.0
    >>> check_int("epoch", 3, low=0)
    3
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any

import torch

__all__ = ["check_bool", "check_choice", "check_int", "check_real", "invalid"]


def invalid(name: str, value: Any, expected: str) -> ValueError:
    """The pack's one error format: ``Invalid {name}: {value!r}; expected {expected}``.

    Example:
        >>> str(invalid("mu", -1, "a finite real number > 0"))
        'Invalid mu: -1; expected a finite real number > 0'
    """
    return ValueError(f"Invalid {name}: {value!r}; expected {expected}")


def _as_real(value: Any) -> float | None:
    """``value`` as a Python float if it is a real number (numpy and 0-dim tensors included, bools not); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype == torch.bool or value.is_complex() or value.device.type == "meta":
            return None
        return float(value.item())
    if isinstance(value, numbers.Real) and type(value).__name__ != "bool_":  # numpy.bool_ is not a Real, but be sure
        return float(value)
    return None


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return " and ".join(parts)


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number within the bounds; return it as a float.

    Args:
        name: the argument's name, as the user wrote it.
        value: the value to check: ``int``, ``float``, a numpy scalar or a 0-dim real tensor (not a bool).
        low: the lower bound, or None.
        high: the upper bound, or None.
        low_open: exclude ``low`` itself.
        high_open: exclude ``high`` itself.

    Returns:
        ``value`` as a Python float.

    Raises:
        ValueError: not a real number, not finite, or out of bounds.

    Example:
        >>> check_real("factor", 0.0, low=0.0, high=1.0, low_open=True)
        Traceback (most recent call last):
        ...
        ValueError: Invalid factor: 0.0; expected a finite real number > 0.0 and <= 1.0
    """
    x = _as_real(value)
    ok = (
        x is not None
        and math.isfinite(x)
        and (low is None or (x > low if low_open else x >= low))
        and (high is None or (x < high if high_open else x <= high))
    )
    if not ok:
        bounds = _bounds(low, high, low_open, high_open)
        raise invalid(name, value, "a finite real number" + (f" {bounds}" if bounds else ""))
    return x  # type: ignore[return-value]


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Check that ``value`` is an integer (not a bool) within ``[low, high]``; return it as an ``int``.

    Args:
        name: the argument's name, as the user wrote it.
        value: the value to check: ``int`` or a numpy integer.
        low: the smallest allowed value, or None.
        high: the largest allowed value, or None.

    Returns:
        ``value`` as a Python int.

    Raises:
        ValueError: not an integer, or out of bounds.

    Example:
        >>> check_int("batch_size", 0, low=1)
        Traceback (most recent call last):
        ...
        ValueError: Invalid batch_size: 0; expected an int >= 1
    """
    ok = (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and (low is None or value >= low)
        and (high is None or value <= high)
    )
    if not ok:
        bounds = _bounds(low, high, False, False)
        raise invalid(name, value, "an int" + (f" {bounds}" if bounds else ""))
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """Check that ``value`` is a bool; return it.

    Example:
        >>> check_bool("fine_tune", 1)
        Traceback (most recent call last):
        ...
        ValueError: Invalid fine_tune: 1; expected True or False
    """
    if not isinstance(value, bool):
        raise invalid(name, value, "True or False")
    return value


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """Check that ``value`` is one of ``choices``; return it.

    Example:
        >>> check_choice("logging_interval", "bogus", ("step", "epoch"))
        Traceback (most recent call last):
        ...
        ValueError: Invalid logging_interval: 'bogus'; expected one of ('step', 'epoch')
    """
    if isinstance(value, bool) or value not in choices:
        raise invalid(name, value, f"one of {tuple(choices)}")
    return value
