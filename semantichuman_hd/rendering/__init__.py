"""Volume rendering: cameras and rays, ray samplers, the K-part compositor.

Rendering receives its scene as a callable :class:`PartField` and never imports the models or the
body code (docs/method.md §9).
"""

from .cameras import (
    FIXED_CAMERA_DISTANCE,
    FIXED_CAMERA_FOCAL,
    FIXED_CAMERA_PRINCIPAL_POINT,
    Cameras,
    fixed_camera,
    normalized_intrinsics,
    orbit_camera,
    perspective_camera,
)
from .compositor import (
    BETA_EPS,
    COMPOSITIONS,
    PartComposition,
    alpha_composite,
    compose_parts,
    normals_to_picture,
    sdf_to_density,
)
from .fields import FieldOutput, PartField
from .ray_sampler import importance_depths, merge_depths, ray_box_intersection, stratified_depths
from .volume_renderer import RenderImages, RenderOutput, VolumeRenderer

__all__ = [
    "BETA_EPS",
    "COMPOSITIONS",
    "FIXED_CAMERA_DISTANCE",
    "FIXED_CAMERA_FOCAL",
    "FIXED_CAMERA_PRINCIPAL_POINT",
    "Cameras",
    "FieldOutput",
    "PartComposition",
    "PartField",
    "RenderImages",
    "RenderOutput",
    "VolumeRenderer",
    "alpha_composite",
    "compose_parts",
    "fixed_camera",
    "importance_depths",
    "merge_depths",
    "normalized_intrinsics",
    "normals_to_picture",
    "orbit_camera",
    "perspective_camera",
    "ray_box_intersection",
    "sdf_to_density",
    "stratified_depths",
]
