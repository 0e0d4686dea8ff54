"""Argument checks shared by the whole package: each raises ``ValueError`` naming the argument, the
value it got and what is allowed, and returns the checked value.

One answer per kind of value: a positive integer is an ``int`` (``bool`` refused) above 0; a number is
an ``int`` or ``float`` (``bool`` refused; NumPy scalars are accepted as their Python value) that is
finite; a choice is one of a tuple of allowed values. A value is checked once, where it enters the
package (a model's ``__init__``, the pipeline's ``check_inputs``, a public function), not again at
every hop.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, Sequence

import torch

__all__ = [
    "check_choice",
    "check_finite_number",
    "check_finite_tensor",
    "check_generator",
    "check_non_negative_int",
    "check_number_in_range",
    "check_positive_int",
    "check_positive_number",
    "renamed_argument",
]


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(value: Any, argument: str) -> int:
    """``value`` as an ``int`` if it is an integer above 0 (``bool`` refused)."""
    if not _is_integer(value) or value <= 0:
        raise ValueError(f"`{argument}` must be a positive integer, got {value!r}.")
    return int(value)


def check_non_negative_int(value: Any, argument: str) -> int:
    """``value`` as an ``int`` if it is an integer ≥ 0 (``bool`` refused)."""
    if not _is_integer(value) or value < 0:
        raise ValueError(f"`{argument}` must be a non-negative integer, got {value!r}.")
    return int(value)


def check_finite_number(value: Any, argument: str, unit: str | None = None) -> float:
    """``value`` as a ``float`` if it is a finite real number (``bool`` refused). ``unit`` (e.g.
    ``"radians"``) is named in the message."""
    if not _is_real(value) or not math.isfinite(value):
        what = f"a finite number of {unit}" if unit else "a finite number"
        raise ValueError(f"`{argument}` must be {what}, got {value!r}.")
    return float(value)


def check_positive_number(value: Any, argument: str, unit: str | None = None) -> float:
    """``value`` as a ``float`` if it is a finite real number above 0 (``bool`` refused)."""
    if not _is_real(value) or not (math.isfinite(value) and value > 0):
        what = f"a positive finite number of {unit}" if unit else "a positive number"
        raise ValueError(f"`{argument}` must be {what}, got {value!r}.")
    return float(value)


def check_number_in_range(
    value: Any, argument: str, low: float, high: float, include_low: bool = True, include_high: bool = True
) -> float:
    """``value`` as a ``float`` if it is a real number between ``low`` and ``high`` (inclusive unless said
    otherwise; ``bool`` refused)."""
    above = _is_real(value) and (value >= low if include_low else value > low)
    below = _is_real(value) and (value <= high if include_high else value < high)
    if not (above and below and math.isfinite(value)):
        interval = f"{'[' if include_low else '('}{low}, {high}{']' if include_high else ')'}"
        raise ValueError(f"`{argument}` must be a number in {interval}, got {value!r}.")
    return float(value)


def check_choice(value: Any, allowed: Sequence, argument: str) -> Any:
    """``value`` if it is one of ``allowed``."""
    if isinstance(value, (list, dict, set)) or value not in allowed:
        raise ValueError(f"`{argument}` must be one of {list(allowed)}, got {value!r}.")
    return value


def _shape_text(shape: Sequence[int | str | None]) -> str:
    names = ["B" if size is None else str(size) for size in shape]
    return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def check_finite_tensor(
    value: Any,
    argument: str,
    shape: Sequence[int | str | None] | None = None,
    allow_empty: bool = False,
) -> torch.Tensor:
    r"""``value`` if it is a floating-point tensor of finite values of ``shape``.

    Parameters:
        value: the tensor.
        argument (`str`): its name in messages.
        shape (sequence, *optional*): expected sizes; ``None`` (or a name such as ``"B"``) matches any
            size of that dimension. Omitted: any shape.
        allow_empty (`bool`): accept a tensor with no elements (e.g. a batch of 0); refused by default.
    """
    if shape is not None:
        shown = _shape_text([size if isinstance(size, int) else None for size in shape])
    if not isinstance(value, torch.Tensor):
        expected = f"a tensor of shape {shown}" if shape is not None else "a tensor"
        raise ValueError(f"`{argument}` must be {expected}, got {type(value).__name__}.")
    if shape is not None and (
        value.ndim != len(shape) or any(isinstance(size, int) and value.shape[i] != size for i, size in enumerate(shape))
    ):
        raise ValueError(f"`{argument}` must be a tensor of shape {shown}, got {tuple(value.shape)}.")
    if not value.is_floating_point():
        raise ValueError(f"`{argument}` must be a floating-point tensor, got dtype {value.dtype}.")
    if value.numel() == 0 and not allow_empty:
        raise ValueError(f"`{argument}` must not be empty, got shape {tuple(value.shape)}.")
    if not torch.isfinite(value).all():
        raise ValueError(f"`{argument}` contains NaN or infinite values.")
    return value


def check_generator(value: Any, argument: str = "generator") -> torch.Generator | None:
    """``value`` if it is None or a ``torch.Generator`` (a seed is refused: pass
    ``torch.Generator().manual_seed(seed)``)."""
    if value is not None and not isinstance(value, torch.Generator):
        raise ValueError(
            f"`{argument}` must be a torch.Generator or None, got {type(value).__name__} {value!r}; "
            "for a seed pass `torch.Generator().manual_seed(seed)`."
        )
    return value


def renamed_argument(value: Any, old_value: Any, name: str, old_name: str, default: Any = None) -> Any:
    """The value of an argument renamed from ``old_name`` to ``name``: ``old_value`` (with a
    ``FutureWarning``) when the caller used the old name (``old_value`` is not None), else ``value``.
    Both given with different values is an error; ``default`` is ``name``'s default (not given)."""
    if old_value is None:
        return value
    warnings.warn(f"`{old_name}` is deprecated: use `{name}`.", FutureWarning, stacklevel=3)
    if value != default and value != old_value:
        raise ValueError(f"Pass `{name}` only (`{old_name}` is its deprecated name), got {name}={value!r} and {old_name}={old_value!r}.")
    return old_value
