"""``make-body-model`` and ``render-body``: write the open body model; look at it through our renderer."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..body.body_model import BodyModel, write_open_body_model
from ..body.deformer import InverseLBSDeformer
from ..body.poses import NAMED_POSES
from ..body.rotations import yaw_global_orient
from ..parts import BACKGROUND_COLOR
from ..scene import PosedPartField, body_only_field, pose_centred, render_posed_field

PREVIEW_POSES: tuple[str, ...] = ("t-pose", "a-pose", "walking", "arms-up")
"""Poses shown by ``render-body``, one per column."""

PREVIEW_VIEWS: tuple[float, ...] = (0.0, math.pi / 2)
"""Yaw angles shown by ``render-body``, one per row: front, then the body's left side."""

PREVIEW_BETA: float = 0.004
"""SDF-to-density sharpness of the preview (a crisp surface for the body prior alone)."""

LIGHT_DIRECTION: tuple[float, float, float] = (-0.4, 0.5, 1.0)
"""Direction towards the key light of the clay shading (world frame, camera on +z)."""

AMBIENT: float = 0.25
"""Ambient share of the clay shading."""


def clay_shading(normals: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:
    """Lambert-shaded grey picture ``(H, W, 3) uint8`` from unit normals ``(3, H, W)`` and alpha ``(H, W)``."""
    light = torch.nn.functional.normalize(torch.tensor(LIGHT_DIRECTION, dtype=normals.dtype), dim=0)
    diffuse = (normals * light.view(3, 1, 1)).sum(0).clamp_min(0)
    shade = (AMBIENT + (1 - AMBIENT) * diffuse) * 0.92
    background = torch.tensor(BACKGROUND_COLOR, dtype=normals.dtype).view(3, 1, 1) / 255
    picture = alpha * shade.unsqueeze(0) + (1 - alpha) * background
    return (picture.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def render_body_sheet(body_model: BodyModel, resolution: int, poses=PREVIEW_POSES, views=PREVIEW_VIEWS) -> tuple[np.ndarray, float]:
    """Render the body in ``poses`` (columns) from ``views`` (rows); returns the sheet and the mean
    seconds per image."""
    from ..rendering.cameras import fixed_camera
    from ..rendering.volume_renderer import VolumeRenderer

    if resolution <= 0:
        raise ValueError(f"`resolution` must be a positive integer, got {resolution!r}.")
    deformer = InverseLBSDeformer.from_body_model(body_model)
    renderer = VolumeRenderer()
    rows, seconds = [], []
    for angle in views:
        tiles = []
        for name in poses:
            body_pose = NAMED_POSES[name].unsqueeze(0)
            orient = yaw_global_orient(torch.zeros(1, 3), angle)
            posed = pose_centred(deformer, body_pose=body_pose, global_orient=orient)
            field = PosedPartField(deformer, posed, body_only_field, num_parts=1)
            start = time.perf_counter()
            with torch.no_grad():
                output = render_posed_field(renderer, field, fixed_camera(1), resolution, resolution, beta=PREVIEW_BETA)
            seconds.append(time.perf_counter() - start)
            images = output.to_images(resolution, resolution)
            tiles.append(clay_shading(images.normals[0], images.alpha[0, 0]))
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0), float(np.mean(seconds))


def _make_body_model(args: argparse.Namespace) -> int:
    path = write_open_body_model(args.out)
    print(f"wrote the open body model to {path}")
    return 0


def _render_body(args: argparse.Namespace) -> int:
    body_model = BodyModel.from_source(args.smpl)
    sheet, seconds = render_body_sheet(body_model, args.resolution)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    print(f"wrote {out} ({body_model.source} body; poses {', '.join(PREVIEW_POSES)}; front and side; {seconds:.1f} s per {args.resolution}² image)")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("make-body-model", help="write the open procedural body model (SMPL format)")
    parser.add_argument("--out", required=True, help="output .pkl path")
    parser.set_defaults(func=_make_body_model)

    parser = subparsers.add_parser("render-body", help="render the body model in a few poses, front and side")
    parser.add_argument("--out", default="body.png", help="output PNG path (default: body.png)")
    parser.add_argument("--resolution", type=int, default=256, help="pixels per tile side (default: 256)")
    parser.add_argument("--smpl", default=None, help="a licensed SMPL .pkl instead of the open body")
    parser.set_defaults(func=_render_body)
