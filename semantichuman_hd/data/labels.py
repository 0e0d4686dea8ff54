"""Label maps: DeepFashion-MultiModal's 24 parsing labels grouped into the six parts (docs/method.md §1),
and colour-coded pictures of part label maps.

Part label maps hold ``0`` for background and ``k + 1`` for part ``k`` of
:data:`~semantichuman_hd.parts.PARTS`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..parts import BACKGROUND_COLOR, NUM_PARTS, PART_COLORS, PARTS, part_index
from .format import BACKGROUND_LABEL

DEEPFASHION_LABEL_NAMES: tuple[str, ...] = (
    "background",
    "top",
    "outer",
    "skirt",
    "dress",
    "pants",
    "leggings",
    "headwear",
    "eyeglass",
    "neckwear",
    "belt",
    "footwear",
    "bag",
    "hair",
    "face",
    "skin",
    "ring",
    "wrist wearing",
    "socks",
    "gloves",
    "necklace",
    "rompers",
    "earrings",
    "tie",
)
"""DeepFashion-MultiModal parsing labels 0..23, by value."""

NUM_DEEPFASHION_LABELS: int = len(DEEPFASHION_LABEL_NAMES)
"""24 parsing values, 0 (background) to 23."""

_PART_GROUPS: dict[str, tuple[str, ...]] = {
    "body": ("face", "hair", "skin"),
    "tops": ("top", "dress", "rompers"),
    "outerwear": ("outer",),
    "bottoms": ("skirt", "pants", "leggings"),
    "shoes": ("footwear", "socks"),
    "accessories": (
        "headwear",
        "eyeglass",
        "neckwear",
        "belt",
        "bag",
        "ring",
        "wrist wearing",
        "gloves",
        "necklace",
        "earrings",
        "tie",
    ),
}

DEEPFASHION_LABEL_TO_PART: dict[int, str | None] = {0: None}
"""DeepFashion parsing value → part name (None for background), the grouping of docs/method.md §1."""
for _part, _names in _PART_GROUPS.items():
    for _name in _names:
        DEEPFASHION_LABEL_TO_PART[DEEPFASHION_LABEL_NAMES.index(_name)] = _part
del _part, _names, _name
DEEPFASHION_LABEL_TO_PART = dict(sorted(DEEPFASHION_LABEL_TO_PART.items()))

LOOKUP_SIZE: int = 256
"""Entries of the uint8 lookup table (every possible 8-bit parsing value)."""


def deepfashion_lookup_table() -> np.ndarray:
    """``(256,) uint8``: parsing value → part label (``k + 1``); background and every value outside
    0..23 map to 0 (the preparation counts those as unknown)."""
    table = np.zeros(LOOKUP_SIZE, dtype=np.uint8)
    for value, part in DEEPFASHION_LABEL_TO_PART.items():
        table[value] = BACKGROUND_LABEL if part is None else part_index(part) + 1
    return table


DEEPFASHION_LOOKUP: np.ndarray = deepfashion_lookup_table()
"""The lookup table of :func:`deepfashion_lookup_table`, built once."""


def deepfashion_to_parts(parsing: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Map a DeepFashion parsing map ``(H, W) uint8`` (values 0..23) to a part label map.

    Returns:
        ``(H, W) uint8`` part labels, and ``{value: pixel count}`` of values outside 0..23 (mapped to
        background).
    """
    parsing = np.asarray(parsing)
    if parsing.ndim != 2 or parsing.dtype != np.uint8:
        raise ValueError(f"`parsing` must be an (H, W) uint8 map, got shape {tuple(parsing.shape)} and dtype {parsing.dtype}.")
    counts = np.bincount(parsing.reshape(-1), minlength=LOOKUP_SIZE)
    unknown = {int(value): int(counts[value]) for value in np.flatnonzero(counts[NUM_DEEPFASHION_LABELS:]) + NUM_DEEPFASHION_LABELS}
    return DEEPFASHION_LOOKUP[parsing], unknown


def part_color_table() -> np.ndarray:
    """``(K + 1, 3) uint8``: white for background, then :data:`PART_COLORS`."""
    return np.array((BACKGROUND_COLOR,) + tuple(PART_COLORS), dtype=np.uint8)


def colorize_labels(segm) -> np.ndarray:
    """Colour-code a part label map ``(H, W)`` (numpy or torch; 0..K) as ``(H, W, 3) uint8`` RGB.

    Raises:
        ValueError: If a value lies outside 0..K.
    """
    if isinstance(segm, torch.Tensor):
        segm = segm.detach().cpu().numpy()
    segm = np.asarray(segm)
    if segm.ndim != 2:
        raise ValueError(f"`segm` must have shape (H, W), got {tuple(segm.shape)}.")
    if segm.size and (segm.min() < 0 or segm.max() > NUM_PARTS):
        raise ValueError(f"`segm` values must be 0..{NUM_PARTS} (0 = background, k + 1 = {list(PARTS)}[k]), got {segm.min()}..{segm.max()}.")
    return part_color_table()[segm.astype(np.int64)]
