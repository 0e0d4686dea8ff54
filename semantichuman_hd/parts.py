"""The six semantic parts of a clothed human (docs/method.md §1) and helpers to name them.

Every per-part tensor in the package orders its K axis as :data:`PARTS`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

PARTS: tuple[str, ...] = ("body", "tops", "outerwear", "bottoms", "shoes", "accessories")
"""Part names, in the order of the K axis of every per-part tensor."""

NUM_PARTS: int = len(PARTS)
"""K, the number of semantic parts (and of local generators)."""

PART_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 204, 153),  # body: skin
    (220, 40, 60),  # tops: red
    (40, 90, 200),  # outerwear: blue
    (40, 160, 70),  # bottoms: green
    (250, 180, 20),  # shoes: amber
    (170, 60, 200),  # accessories: purple
)
"""RGB colour of each part in colour-coded semantic pictures (background is white)."""

BACKGROUND_COLOR: tuple[int, int, int] = (255, 255, 255)
"""Colour of background pixels in images, semantic pictures and normal maps."""


def part_index(name: str, argument: str = "part") -> int:
    """Index of a part in :data:`PARTS`.

    Parameters:
        name: A part name, e.g. ``"tops"``.
        argument: The argument name to cite in the error message.

    Raises:
        ValueError: If ``name`` is not one of :data:`PARTS`.
    """
    if not isinstance(name, str) or name not in PARTS:
        raise ValueError(f"`{argument}` must be one of {list(PARTS)}, got {name!r}.")
    return PARTS.index(name)


def part_indices(names: str | Iterable[str], argument: str = "parts") -> list[int]:
    """Indices of one or several part names (a single string is one part).

    Raises:
        ValueError: If any name is unknown or the selection is empty.
    """
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise ValueError(f"`{argument}` must name at least one of {list(PARTS)}, got an empty selection.")
    return [part_index(name, argument) for name in names]


def part_mask(names: str | Sequence[str], argument: str = "parts") -> list[bool]:
    """A length-K boolean list selecting the named parts."""
    selected = set(part_indices(names, argument))
    return [k in selected for k in range(NUM_PARTS)]
