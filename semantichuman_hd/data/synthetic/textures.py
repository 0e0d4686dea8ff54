"""Procedural materials of the synthetic clothed humans: colours and patterns in canonical coordinates.

A :class:`Material` is evaluated at surface points given in the CANONICAL REST coordinates of the body
(T-pose, betas 0, metres; every garment vertex has such a coordinate, see
:mod:`.garments`), so stripes, checks and prints stay attached to the garment however the person is
posed or shaped. Patterns:

``solid``   one colour with a faint fabric grain.
``stripes`` two colours in bands across ``direction`` with period ``scale`` and duty ``duty``.
``checks``  gingham: two crossing stripe sets, three tones.
``plaid``   tartan-like: two crossing stripe sets of two widths in three colours.
``dots``    polka dots on a 3-D lattice of period ``scale``.
``print``   a blotchy two-to-three-colour print (sums of random waves, thresholded).
``denim``   a blue twill: diagonal fine lines and fading.
``skin``    a skin tone with painted eyes, brows and lips (at ``extra["points"]``, filled in from the
            body model when the scene is built).
``shoe``    an upper colour and a sole colour below ``extra["sole"]``.
``belt``    a strap colour and a buckle colour around ``extra["buckle"]``.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "HAIR_COLORS",
    "Material",
    "PATTERNS",
    "SKIN_TONES",
    "evaluate_material",
    "random_garment_color",
]

PATTERNS: tuple[str, ...] = ("solid", "stripes", "checks", "plaid", "dots", "print", "denim", "skin", "shoe", "belt")
"""Pattern names a :class:`Material` may use."""

SKIN_TONES: tuple[tuple[float, float, float], ...] = (
    (0.98, 0.85, 0.75),
    (0.94, 0.78, 0.66),
    (0.88, 0.70, 0.56),
    (0.80, 0.60, 0.46),
    (0.70, 0.50, 0.36),
    (0.58, 0.40, 0.28),
    (0.45, 0.30, 0.21),
    (0.33, 0.22, 0.16),
)
"""Skin tones from light to dark (RGB in [0, 1])."""

HAIR_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.06, 0.05, 0.05),
    (0.17, 0.11, 0.07),
    (0.32, 0.20, 0.12),
    (0.55, 0.40, 0.25),
    (0.82, 0.68, 0.45),
    (0.55, 0.22, 0.10),
    (0.62, 0.62, 0.62),
)
"""Hair colours: black, dark brown, brown, light brown, blond, red, grey."""

GARMENT_BASE_COLORS: tuple[tuple[float, float, float], ...] = (
    (0.95, 0.95, 0.93),  # white
    (0.08, 0.08, 0.09),  # black
    (0.45, 0.45, 0.47),  # grey
    (0.10, 0.14, 0.30),  # navy
    (0.76, 0.68, 0.52),  # beige
    (0.55, 0.43, 0.28),  # camel
    (0.30, 0.36, 0.20),  # olive
    (0.45, 0.08, 0.14),  # burgundy
    (0.75, 0.15, 0.15),  # red
    (0.15, 0.40, 0.70),  # blue
    (0.20, 0.55, 0.35),  # green
    (0.95, 0.80, 0.20),  # mustard
    (0.93, 0.65, 0.72),  # pink
    (0.60, 0.75, 0.90),  # light blue
    (0.55, 0.35, 0.65),  # purple
    (0.90, 0.45, 0.20),  # orange
)
"""Common clothing colours, jittered by :func:`random_garment_color`."""

SPEC_DECIMALS: int = 5
"""Decimals kept for the numbers of outfit specs (specs are rounded when drawn, so the stored spec is
exactly the rendered one)."""

GRAIN_AMPLITUDE: float = 0.03
"""Relative brightness variation of the fabric grain."""


@dataclass
class Material:
    """A procedural material (JSON-serialisable through :meth:`to_dict`).

    Parameters:
        pattern: One of :data:`PATTERNS`.
        colors: RGB colours in [0, 1] used by the pattern (the first is the main colour).
        scale: Pattern period in metres.
        direction: Unit vector across stripes (canonical rest frame).
        duty: Fraction of a stripe period in the second colour.
        seed: Seed of random patterns (``print``).
        extra: Pattern-specific numbers and points (``skin``: ``points``; ``shoe``: ``sole``;
            ``belt``: ``buckle``).
    """

    pattern: str = "solid"
    colors: list[list[float]] = field(default_factory=lambda: [[0.5, 0.5, 0.5]])
    scale: float = 0.05
    direction: list[float] = field(default_factory=lambda: [0.0, 1.0, 0.0])
    duty: float = 0.5
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.pattern not in PATTERNS:
            raise ValueError(f"`pattern` must be one of {list(PATTERNS)}, got {self.pattern!r}.")
        if not self.colors:
            raise ValueError("`colors` must hold at least one RGB colour.")

    def to_dict(self) -> dict:
        """JSON form, numbers rounded to :data:`SPEC_DECIMALS` and default fields left out."""
        data = {"pattern": self.pattern, "colors": [[round(float(c), SPEC_DECIMALS) for c in color] for color in self.colors]}
        defaults = Material()
        for name in ("scale", "duty"):
            if getattr(self, name) != getattr(defaults, name):
                data[name] = round(float(getattr(self, name)), SPEC_DECIMALS)
        if list(self.direction) != defaults.direction:
            data["direction"] = [round(float(d), SPEC_DECIMALS) for d in self.direction]
        if self.seed:
            data["seed"] = int(self.seed)
        if self.extra:
            data["extra"] = round_json(self.extra)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Material":
        return cls(**data)


def round_json(value):
    """``value`` (nested dicts, lists and numbers) with floats rounded to :data:`SPEC_DECIMALS`."""
    if isinstance(value, dict):
        return {key: round_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_json(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return round(float(value), SPEC_DECIMALS)
    if isinstance(value, np.integer):
        return int(value)
    return value


def random_garment_color(rng: np.random.Generator) -> list[float]:
    """A clothing colour: a common base colour with small hue, saturation and value jitter."""
    base = GARMENT_BASE_COLORS[rng.integers(len(GARMENT_BASE_COLORS))]
    h, s, v = colorsys.rgb_to_hsv(*base)
    h = (h + rng.normal(0.0, 0.02)) % 1.0
    s = float(np.clip(s * rng.uniform(0.8, 1.15), 0.0, 1.0))
    v = float(np.clip(v * rng.uniform(0.85, 1.12), 0.03, 0.98))
    return list(colorsys.hsv_to_rgb(h, s, v))


def _grain(points: np.ndarray, seed: int) -> np.ndarray:
    """Faint per-point fabric variation ``(P,)`` around 1."""
    phase = (seed % 997) * 0.37
    wave = np.sin(points @ np.array([310.0, 170.0, 230.0]) + phase) * np.sin(points @ np.array([-150.0, 290.0, 120.0]) - phase)
    return 1.0 + GRAIN_AMPLITUDE * wave


def _stripe(points: np.ndarray, direction, scale: float, duty: float) -> np.ndarray:
    """``(P,)`` bool: points in the second-colour band of a stripe pattern."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / max(np.linalg.norm(d), 1e-9)
    phase = (points @ d) / max(scale, 1e-4)
    return (phase - np.floor(phase)) < duty


def _perpendicular(direction) -> np.ndarray:
    d = np.asarray(direction, dtype=np.float64)
    d = d / max(np.linalg.norm(d), 1e-9)
    other = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    perpendicular = other - d * (other @ d)
    return perpendicular / np.linalg.norm(perpendicular)


def _colors(material: Material, count: int) -> np.ndarray:
    colors = [np.asarray(c, dtype=np.float64) for c in material.colors]
    while len(colors) < count:
        colors.append(colors[-1] * 0.6)
    return np.stack(colors[:count])


def evaluate_material(material: Material, points: np.ndarray) -> np.ndarray:
    """Albedo ``(P, 3)`` in [0, 1] of ``material`` at canonical rest points ``(P, 3)``."""
    points = np.asarray(points, dtype=np.float64)
    pattern = material.pattern
    if pattern == "solid":
        colors = _colors(material, 1)
        albedo = np.broadcast_to(colors[0], points.shape).copy()
    elif pattern == "stripes":
        colors = _colors(material, 2)
        albedo = np.where(_stripe(points, material.direction, material.scale, material.duty)[:, None], colors[1], colors[0])
    elif pattern in ("checks", "plaid"):
        colors = _colors(material, 3)
        across = _perpendicular(material.direction)
        a = _stripe(points, material.direction, material.scale, material.duty)
        b = _stripe(points, across, material.scale, material.duty)
        if pattern == "checks":
            albedo = np.where((a & b)[:, None], colors[2], np.where((a | b)[:, None], colors[1], colors[0]))
        else:
            thin_a = _stripe(points, material.direction, material.scale, 0.12)
            thin_b = _stripe(points, across, material.scale, 0.12)
            base = 0.5 * colors[0] + 0.5 * np.where(a[:, None], colors[1], colors[0])
            base = 0.5 * base + 0.5 * np.where(b[:, None], colors[1], colors[0])
            albedo = np.where((thin_a | thin_b)[:, None], colors[2], base)
    elif pattern == "dots":
        colors = _colors(material, 2)
        cell = points / max(material.scale, 1e-4)
        distance = np.linalg.norm(cell - np.round(cell), axis=1)
        albedo = np.where((distance < material.duty * 0.5)[:, None], colors[1], colors[0])
    elif pattern == "print":
        colors = _colors(material, 3)
        rng = np.random.default_rng(material.seed)
        waves = rng.normal(size=(6, 3)) / max(material.scale, 1e-3)
        phases = rng.uniform(0, 2 * math.pi, size=6)
        value = np.sin(points @ waves.T + phases).sum(1)
        second = np.sin(points @ (waves[::-1].T * 1.7) + phases[::-1]).sum(1)
        albedo = np.where((value > 1.2)[:, None], colors[1], np.where((second > 1.6)[:, None], colors[2], colors[0]))
    elif pattern == "denim":
        colors = _colors(material, 2)
        twill = np.sin((points @ np.array([1.0, 1.0, 0.3])) * 2 * math.pi / 0.004)
        fade = 0.5 + 0.5 * np.sin(points @ np.array([0.0, 9.0, 0.0]) + material.seed)
        albedo = colors[0] * (1.0 + 0.06 * twill[:, None]) * (0.92 + 0.16 * fade[:, None])
    elif pattern == "skin":
        colors = _colors(material, 1)
        albedo = np.broadcast_to(colors[0], points.shape).copy()
        features = material.extra.get("points", {})
        eye_color = np.array(material.extra.get("eye_color", [0.12, 0.09, 0.07]))
        lip_color = colors[0] * np.array([0.85, 0.55, 0.55])
        brow_color = np.array(material.extra.get("brow_color", [0.15, 0.1, 0.07]))
        for name, point in features.items():
            offset = points - np.asarray(point)
            if name.endswith("eye"):
                inside = (offset[:, 0] / 0.011) ** 2 + (offset[:, 1] / 0.0065) ** 2 < 1.0
                pupil = (offset[:, 0] / 0.005) ** 2 + (offset[:, 1] / 0.005) ** 2 < 1.0
                albedo[inside] = np.array([0.93, 0.92, 0.9])
                albedo[inside & pupil] = eye_color
            elif name.endswith("brow"):
                inside = (offset[:, 0] / 0.016) ** 2 + (offset[:, 1] / 0.0035) ** 2 < 1.0
                albedo[inside] = brow_color
            elif name == "mouth":
                inside = (offset[:, 0] / 0.02) ** 2 + (offset[:, 1] / 0.006) ** 2 < 1.0
                albedo[inside] = lip_color
        return np.clip(albedo, 0.0, 1.0)
    elif pattern == "shoe":
        colors = _colors(material, 2)
        albedo = np.where((points[:, 1] < material.extra.get("sole", -10.0))[:, None], colors[1], colors[0])
    elif pattern == "belt":
        colors = _colors(material, 2)
        buckle = np.asarray(material.extra.get("buckle", [0.0, 0.0, 1.0]))
        inside = (np.abs(points[:, 0] - buckle[0]) < 0.022) & (points[:, 2] > buckle[2] - 0.05)
        albedo = np.where(inside[:, None], colors[1], colors[0])
    else:  # pragma: no cover - guarded by __post_init__
        raise ValueError(f"unknown pattern {pattern!r}")
    return np.clip(albedo * _grain(points, material.seed)[:, None], 0.0, 1.0)
