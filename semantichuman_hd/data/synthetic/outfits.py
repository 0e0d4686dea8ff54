"""Random outfits: which garments a synthetic person wears, their shapes, layering and materials.

:func:`sample_outfit` draws an :class:`OutfitSpec` from a numpy generator. The spec is plain data
(JSON through :meth:`OutfitSpec.to_dict`), stored in every sample's label extras so the sample — and
the ground-truth canonical mesh of each of its parts — can be rebuilt exactly.

Layering is decided here, by the offsets given to each garment (see
:data:`~.garments.LAYER_OFFSETS`): a tucked top lies under the bottoms, an untucked one over them;
belts lie over both; outerwear over everything on the trunk; bag straps outermost; shoes and boots
over trouser hems (boots take skinny trousers inside them; flared trousers fall over low shoes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .garments import LAYER_OFFSETS, BodyTopology, GarmentSpec
from .textures import HAIR_COLORS, SKIN_TONES, Material, random_garment_color

__all__ = ["OutfitSpec", "PART_PROBABILITIES", "sample_outfit"]

PART_PROBABILITIES: dict[str, float] = {
    "tops": 0.93,
    "outerwear": 0.35,
    "shoes": 0.9,
    "hat": 0.18,
    "glasses": 0.2,
    "bag": 0.22,
    "belt": 0.22,
}
"""Probability that an outfit holds each garment family (bottoms follow from the top: a dress
usually replaces them)."""

NO_TOP_OUTERWEAR: float = 0.8
"""Probability of (closed) outerwear when there is no top."""

TOP_KINDS: dict[str, float] = {"tshirt": 0.3, "longsleeve": 0.22, "tank": 0.13, "crop": 0.07, "dress": 0.28}
"""Relative frequencies of the kinds of top."""

BOTTOM_KINDS: dict[str, float] = {"trousers": 0.32, "jeans": 0.2, "shorts": 0.2, "skirt": 0.28}
"""Relative frequencies of the kinds of bottoms (when not wearing a dress)."""

SHOE_KINDS: dict[str, float] = {"sneakers": 0.5, "shoes": 0.25, "boots": 0.25}
"""Relative frequencies of the kinds of footwear."""

HAIR_STYLES: dict[str, float] = {"buzz": 0.07, "short": 0.28, "bob": 0.2, "long": 0.3, "bun": 0.1, "bald": 0.05}
"""Relative frequencies of the hair styles (style numbers 0..4 of the hair builder; bald has none)."""

PATTERN_WEIGHTS: dict[str, float] = {"solid": 0.52, "stripes": 0.13, "checks": 0.08, "plaid": 0.06, "dots": 0.08, "print": 0.13}
"""Relative frequencies of garment patterns."""

DENIM_BLUES: tuple[tuple[float, float, float], ...] = ((0.16, 0.24, 0.42), (0.28, 0.40, 0.60), (0.45, 0.58, 0.75), (0.12, 0.14, 0.2))
"""Denim colours from dark indigo to light wash and black."""


def _choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.asarray([weights[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _pattern_material(rng: np.random.Generator, allow_patterns: bool = True) -> Material:
    pattern = _choice(rng, PATTERN_WEIGHTS) if allow_patterns else "solid"
    colors = [random_garment_color(rng) for _ in range(3)]
    direction = [0.0, 1.0, 0.0] if rng.random() < 0.65 else ([1.0, 0.0, 0.0] if rng.random() < 0.5 else [0.7, 0.7, 0.0])
    scale = {"stripes": rng.uniform(0.015, 0.07), "checks": rng.uniform(0.02, 0.06), "plaid": rng.uniform(0.05, 0.11),
             "dots": rng.uniform(0.025, 0.06), "print": rng.uniform(0.025, 0.08)}.get(pattern, 0.05)
    duty = rng.uniform(0.25, 0.55) if pattern != "dots" else rng.uniform(0.3, 0.6)
    return Material(pattern=pattern, colors=colors, scale=float(scale), direction=direction, duty=float(duty), seed=int(rng.integers(1 << 30)))


def _denim(rng: np.random.Generator) -> Material:
    base = np.asarray(DENIM_BLUES[rng.integers(len(DENIM_BLUES))]) * rng.uniform(0.9, 1.1)
    return Material(pattern="denim", colors=[np.clip(base, 0, 1).tolist()], seed=int(rng.integers(1 << 30)))


@dataclass
class OutfitSpec:
    """What one person wears.

    Parameters:
        skin: The skin material (skin tone and painted face).
        garments: The garments, in build order (hair first, then inner to outer layers).
    """

    skin: Material
    garments: list[GarmentSpec] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"skin": self.skin.to_dict(), "garments": [g.to_dict() for g in self.garments]}

    @classmethod
    def from_dict(cls, data: dict) -> "OutfitSpec":
        return cls(skin=Material.from_dict(data["skin"]), garments=[GarmentSpec.from_dict(g) for g in data["garments"]])

    @property
    def parts(self) -> set[str]:
        """The parts present (``"body"`` always)."""
        return {"body"} | {g.part for g in self.garments}

    @property
    def has_skirt(self) -> bool:
        """Whether a skirt-like surface hangs from the hips (skirts, dresses, long coats)."""
        return any(g.kind in ("skirt", "dress") or (g.kind == "outerwear" and g.params.get("long", 0) >= 0.5) for g in self.garments)


def sample_outfit(rng: np.random.Generator, topology: BodyTopology) -> OutfitSpec:
    """Draw a random outfit.

    Parameters:
        rng: The random generator (the outfit depends on nothing else).
        topology: The body's topology (for the heights of shoe soles and belt buckles).
    """
    u = rng.uniform
    garments: list[GarmentSpec] = []

    # ---- Skin and hair (part "body").
    tone = np.asarray(SKIN_TONES[rng.integers(len(SKIN_TONES))]) * u(0.94, 1.06)
    hair_color = np.asarray(HAIR_COLORS[rng.integers(len(HAIR_COLORS))]) * u(0.85, 1.15)
    skin = Material(
        pattern="skin",
        colors=[np.clip(tone, 0, 1).tolist()],
        extra={"brow_color": np.clip(hair_color * 0.8, 0, 1).tolist(),
               "eye_color": [0.1, 0.07, 0.05] if rng.random() < 0.7 else [0.2, 0.35, 0.45]},
    )
    hair_style = _choice(rng, HAIR_STYLES)

    # ---- Tops.
    top_kind = _choice(rng, TOP_KINDS) if rng.random() < PART_PROBABILITIES["tops"] else None
    dress = top_kind == "dress"
    # ---- Bottoms.
    if dress:
        bottom_kind = "leggings" if rng.random() < 0.15 else None
    else:
        bottom_kind = _choice(rng, BOTTOM_KINDS)
    tucked = top_kind in ("tshirt", "longsleeve", "tank") and bottom_kind not in (None, "leggings") and rng.random() < 0.35
    top_offset = LAYER_OFFSETS["top_tucked"] if tucked else LAYER_OFFSETS["top_untucked"]
    # ---- Outerwear (closed if there is no top to show).
    # Without a top, most people wear a closed jacket or coat.
    has_outer = rng.random() < (NO_TOP_OUTERWEAR if top_kind is None else PART_PROBABILITIES["outerwear"])
    outer_open = has_outer and top_kind is not None and rng.random() < 0.6
    outer_long = has_outer and rng.random() < 0.35
    outer_looseness = u(0.0, 0.012)
    # ---- Footwear.
    shoe_kind = _choice(rng, SHOE_KINDS) if rng.random() < PART_PROBABILITIES["shoes"] else None
    # ---- Accessories.
    has_hat = rng.random() < PART_PROBABILITIES["hat"]
    has_glasses = rng.random() < PART_PROBABILITIES["glasses"]
    has_bag = rng.random() < PART_PROBABILITIES["bag"]
    backpack = has_bag and rng.random() < 0.35
    has_belt = (bottom_kind in ("trousers", "jeans", "shorts", "skirt") or dress) and rng.random() < PART_PROBABILITIES["belt"]
    if backpack and hair_style == "long":
        hair_style = "bob"

    torso_outermost = max(
        [LAYER_OFFSETS["bottoms"]]
        + ([top_offset] if top_kind else [])
        + ([LAYER_OFFSETS["belt"]] if has_belt else [])
        + ([LAYER_OFFSETS["outerwear"] + outer_looseness] if has_outer else [])
    )

    if hair_style != "bald":
        style = {"buzz": 0, "short": 1, "bob": 2, "long": 3, "bun": 4}[hair_style]
        c = np.clip(hair_color, 0, 1)
        garments.append(GarmentSpec("body", "hair", {
            "style": float(style),
            "volume": float(u(0.0, 0.012) if style >= 1 else 0.0),
            "fringe": float(u(-0.03, 0.01)),
            "length": float(u(0.2, 1.0)),
            "bun_size": float(u(0.06, 0.09)),
            "clearance": float(torso_outermost),
        }, [Material("stripes", [c.tolist(), (c * 0.8).tolist()], scale=0.006, direction=[1.0, 0.0, 0.3], duty=0.4,
                     seed=int(rng.integers(1 << 30)))]))

    # Build order below is inner to outer: skirt-like surfaces must be built before those over them.
    if bottom_kind is not None:
        waist = float(u(0.15, 0.75))
        if bottom_kind == "skirt":
            garments.append(GarmentSpec("bottoms", "skirt", {
                "waist": waist,
                "length": float(rng.choice([u(0.05, 0.3), u(0.35, 0.6), u(0.6, 0.95)], p=[0.4, 0.4, 0.2])),
                "offset": LAYER_OFFSETS["bottoms"],
                "flare": float(u(0.03, 0.45)),
                "pleats": float(u(0.0, 0.05) if rng.random() < 0.5 else 0.0),
                "pleat_count": float(rng.integers(8, 18)),
            }, [_pattern_material(rng) if rng.random() < 0.8 else _denim(rng)]))
        else:
            if bottom_kind == "shorts":
                length = u(0.05, 0.35)
            elif bottom_kind == "leggings":
                length = u(0.75, 1.0)
            else:
                length = u(0.9, 1.0) if rng.random() < 0.85 else u(0.65, 0.85)
            flare = 0.0 if (shoe_kind == "boots" or bottom_kind == "leggings") else float(u(0.0, 0.03) if rng.random() < 0.5 else 0.0)
            material = _denim(rng) if bottom_kind == "jeans" or (bottom_kind == "shorts" and rng.random() < 0.4) else _pattern_material(rng, allow_patterns=rng.random() < 0.35)
            garments.append(GarmentSpec("bottoms", "trousers", {
                "waist": waist,
                "length": float(length),
                "offset": LAYER_OFFSETS["leggings" if bottom_kind == "leggings" else "bottoms"],
                "flare": flare,
            }, [material]))

    if top_kind is not None:
        neck_v = float(rng.random() < 0.3)
        params = {
            "offset": top_offset,
            "neck_depth": float(u(0.01, 0.09)),
            "neck_width": float(u(0.05, 0.09)),
            "neck_v": neck_v,
            "looseness": float(u(0.0, 0.01)),
        }
        if top_kind in ("tank",) or (dress and rng.random() < 0.4):
            params.update(strap_width=float(u(0.07, 0.11)), armhole=float(u(0.06, 0.14)))
        elif top_kind == "longsleeve" or (dress and rng.random() < 0.3):
            params["sleeve"] = float(u(0.92, 1.0) if rng.random() < 0.8 else u(0.55, 0.8))
            if rng.random() < 0.15:
                params["collar"] = 0.05  # turtleneck
                params["neck_depth"] = 0.0
        else:
            params["sleeve"] = float(u(0.15, 0.42))
        material = _pattern_material(rng)
        if dress:
            params.update(length=float(rng.choice([u(0.1, 0.35), u(0.35, 0.65), u(0.65, 1.0)])), flare=float(u(0.05, 0.45)),
                          pleats=float(u(0.0, 0.05) if rng.random() < 0.4 else 0.0), pleat_count=float(rng.integers(8, 18)),
                          offset=LAYER_OFFSETS["top_untucked"])
            garments.append(GarmentSpec("tops", "dress", params, [material]))
        else:
            params["hem"] = float(u(0.05, 0.3)) if top_kind == "crop" else float(u(0.55, 0.95))
            if bottom_kind == "skirt" and not tucked:
                params["hem"] = min(params["hem"], 0.6)  # above the skirt's rim
            garments.append(GarmentSpec("tops", "top", params, [material]))

    if has_belt:
        bottoms = next((g for g in garments if g.part == "bottoms"), None)
        waist = bottoms.params["waist"] if bottoms is not None and not dress else float(u(-0.3, 0.3))
        leather = np.asarray([[0.1, 0.07, 0.05], [0.35, 0.2, 0.1], [0.05, 0.05, 0.05], [0.6, 0.45, 0.3]][rng.integers(4)])
        buckle_y = topology.y("spine1") + (topology.y("pelvis") - topology.y("spine1")) * waist
        front = topology.template[topology.torso & (np.abs(topology.template[:, 1] - buckle_y) < 0.02), 2]
        garments.append(GarmentSpec("accessories", "belt", {
            "waist": float(waist), "width": float(u(0.028, 0.045)), "offset": LAYER_OFFSETS["belt"],
        }, [Material("belt", [leather.tolist(), [0.8, 0.75, 0.6] if rng.random() < 0.5 else [0.6, 0.6, 0.62]],
                     extra={"buckle": [0.0, float(buckle_y), float(front.max() if front.size else 0.1)]})]))

    if has_outer:
        params = {
            "offset": LAYER_OFFSETS["outerwear"],
            "looseness": float(outer_looseness),
            "sleeve": float(u(0.95, 1.04)),
            "collar": float(u(0.0, 0.03)),
            "neck_depth": float(u(0.02, 0.12)),
            "neck_width": float(u(0.06, 0.1)),
            "neck_v": 1.0,
            "hem": float(u(0.5, 1.0)),
            "long": float(outer_long),
            "length": float(u(0.0, 0.9)),
            "flare": float(u(0.03, 0.2)),
            "opening": float(u(0.07, 0.14)) if outer_open else 0.0,
        }
        material = _denim(rng) if rng.random() < 0.15 else _pattern_material(rng, allow_patterns=rng.random() < 0.3)
        garments.append(GarmentSpec("outerwear", "outerwear", params, [material]))

    if shoe_kind is not None:
        color = random_garment_color(rng) if shoe_kind == "sneakers" else np.asarray(
            [[0.08, 0.07, 0.06], [0.3, 0.18, 0.1], [0.5, 0.35, 0.2], [0.1, 0.1, 0.12]][rng.integers(4)]).tolist()
        sole = [0.95, 0.95, 0.93] if shoe_kind == "sneakers" and rng.random() < 0.7 else [0.12, 0.1, 0.08]
        height = {"sneakers": u(0.0, 0.06), "shoes": u(-0.04, 0.02), "boots": u(0.3, 0.75)}[shoe_kind]
        garments.append(GarmentSpec("shoes", "shoes", {
            "height": float(height), "offset": LAYER_OFFSETS["boots" if shoe_kind == "boots" else "shoes"],
        }, [Material("shoe", [color, sole], extra={"sole": float(topology.sole_height + 0.022)})]))

    if has_hat:
        style = int(rng.choice(3, p=[0.45, 0.3, 0.25]))
        garments.append(GarmentSpec("accessories", "hat", {
            "style": float(style), "brim": float(u(0.05, 0.08) if style == 0 else u(0.05, 0.11)),
            "droop": float(u(0.015, 0.035) if style == 0 else u(0.0, 0.02)),
        }, [_pattern_material(rng, allow_patterns=style == 1 and rng.random() < 0.5), Material("solid", [random_garment_color(rng)])]))
    if has_glasses:
        frame = [[0.05, 0.05, 0.05], [0.35, 0.2, 0.1], [0.7, 0.6, 0.3]][rng.integers(3)]
        garments.append(GarmentSpec("accessories", "glasses", {
            "radius": float(u(0.019, 0.025)), "tinted": float(rng.random() < 0.5),
        }, [Material("solid", [frame]), Material("solid", [[0.08, 0.08, 0.1]])]))
    if has_bag:
        garments.append(GarmentSpec("accessories", "bag", {
            "style": float(backpack), "side": float(rng.random() < 0.5),
            "width": float(u(0.17, 0.26)), "height": float(u(0.12, 0.2)), "strap_width": float(u(0.025, 0.04)),
            "strap_offset": float(torso_outermost + LAYER_OFFSETS["strap"]),
        }, [_pattern_material(rng, allow_patterns=rng.random() < 0.3), Material("solid", [random_garment_color(rng)])]))
    # Round through the JSON form, so the spec stored in a label is exactly the one rendered.
    return OutfitSpec.from_dict(OutfitSpec(skin=skin, garments=garments).to_dict())
