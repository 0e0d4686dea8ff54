"""Procedural clothed humans: the offline stand-in for DeepFashion.

People on the body model, in random shapes and plausible poses, each wearing a random outfit over the
six parts (body with hair, tops, outerwear, bottoms, shoes, accessories), rendered at the fixed camera
into image, label map and normal map with exact camera and SMPL labels
(``semantichuman-hd make-dataset synthetic``).

Modules: :mod:`.garments` (garment geometry on the body), :mod:`.textures` (procedural materials),
:mod:`.outfits` (random outfits), :mod:`.generator` (per-sample pipeline and parallel driver).
"""

from .garments import GARMENT_KINDS, LAYER_OFFSETS, BodyState, BodyTopology, GarmentSpec, MeshPiece, body_state, build_garment
from .generator import (
    GENERATOR_NAME,
    GENERATOR_VERSION,
    RenderedSample,
    SampleSpec,
    SyntheticHumanGenerator,
    export_part_meshes,
    generate_dataset,
)
from .outfits import OutfitSpec, sample_outfit
from .textures import PATTERNS, Material, evaluate_material

__all__ = [
    "GARMENT_KINDS",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "LAYER_OFFSETS",
    "PATTERNS",
    "BodyState",
    "BodyTopology",
    "GarmentSpec",
    "Material",
    "MeshPiece",
    "OutfitSpec",
    "RenderedSample",
    "SampleSpec",
    "SyntheticHumanGenerator",
    "body_state",
    "build_garment",
    "evaluate_material",
    "export_part_meshes",
    "generate_dataset",
    "sample_outfit",
]
