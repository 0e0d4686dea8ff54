"""``make-body-model`` and ``render-body``: write the open body model; look at it through our renderer."""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from PIL import Image

from ..body.body_model import BodyModel, write_open_body_model
from ..body.deformer import InverseLBSDeformer
from ..body.poses import NAMED_POSES
from ..body.rotations import yaw_global_orient
from ..parts import BACKGROUND_COLOR
from ..scene import PosedPartField, body_only_field, pose_centred, render_posed_field
from ._common import IMAGE_SUFFIXES, MEMORY_HEADROOM, add_progress_argument, available_memory_bytes, check_output_file, format_bytes

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

RENDER_BYTES_PER_PIXEL: int = 1024
"""Memory that grows with each pixel of a ``render-body`` tile (rays, their near/far bounds, the
per-pixel outputs and the pictures made of them), bytes, rounded up. Measured on the CPU: a 64² tile
raised the peak by 97 MB and a 256² one by 305 MB, most of it the renderer's fixed working set of one
16384-ray chunk; what grows past that is a few hundred bytes per pixel."""

def check_render_resolution(resolution: int, argument: str = "--resolution", available: int | None = None) -> int:
    """``resolution`` if it is a positive integer whose tile fits in memory: a ValueError naming
    ``argument`` with the estimated need otherwise (before any work)."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise ValueError(f"`{argument}` must be a positive integer (pixels per tile side), got {resolution!r}.")
    need = resolution * resolution * RENDER_BYTES_PER_PIXEL
    available = available_memory_bytes() if available is None else available
    if available is not None and need > MEMORY_HEADROOM * available:
        largest = int(math.sqrt(MEMORY_HEADROOM * available / RENDER_BYTES_PER_PIXEL))
        raise ValueError(
            f"`{argument}` {resolution} needs about {format_bytes(need)} of memory for one {resolution}² tile "
            f"(~{RENDER_BYTES_PER_PIXEL} bytes per pixel), but this machine has {format_bytes(available)} available; "
            f"use at most about {largest}."
        )
    return resolution


def clay_shading(normals: torch.Tensor, alpha: torch.Tensor) -> np.ndarray:
    """Lambert-shaded grey picture ``(H, W, 3) uint8`` from unit normals ``(3, H, W)`` and alpha ``(H, W)``."""
    light = torch.nn.functional.normalize(torch.tensor(LIGHT_DIRECTION, dtype=normals.dtype), dim=0)
    diffuse = (normals * light.view(3, 1, 1)).sum(0).clamp_min(0)
    shade = (AMBIENT + (1 - AMBIENT) * diffuse) * 0.92
    background = torch.tensor(BACKGROUND_COLOR, dtype=normals.dtype).view(3, 1, 1) / 255
    picture = alpha * shade.unsqueeze(0) + (1 - alpha) * background
    return (picture.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def render_body_sheet(
    body_model: BodyModel, resolution: int, poses=PREVIEW_POSES, views=PREVIEW_VIEWS, progress: bool = False
) -> tuple[np.ndarray, float]:
    """Render the body in ``poses`` (columns) from ``views`` (rows); returns the sheet and the mean
    seconds per image. With ``progress``, a labelled bar counts the tiles."""
    from tqdm.auto import tqdm

    from ..rendering.cameras import fixed_camera
    from ..rendering.volume_renderer import VolumeRenderer

    check_render_resolution(resolution, "resolution")
    bar = tqdm(total=len(poses) * len(views), desc=f"render-body: {resolution}² tiles", unit="tile", disable=not progress, dynamic_ncols=True)
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
            bar.update()
        rows.append(np.concatenate(tiles, axis=1))
    bar.close()
    return np.concatenate(rows, axis=0), float(np.mean(seconds))


def _make_body_model(args: argparse.Namespace) -> int:
    check_output_file(args.out, (".pkl",))
    path = write_open_body_model(args.out)
    print(f"wrote the open body model to {path}")
    return 0


def _render_body(args: argparse.Namespace) -> int:
    out = check_output_file(args.out, IMAGE_SUFFIXES)
    check_render_resolution(args.resolution)
    body_model = BodyModel.from_source(args.smpl)
    sheet, seconds = render_body_sheet(body_model, args.resolution, progress=not args.quiet)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    print(f"wrote {out} ({body_model.source} body; poses {', '.join(PREVIEW_POSES)}; front and side; {seconds:.1f} s per {args.resolution}² image)")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "make-body-model",
        help="write the open procedural body model (SMPL format)",
        description="Write the open procedural body model as a SMPL-format .pkl (plain numpy arrays, readable by smplx.SMPL).",
    )
    parser.add_argument("--out", required=True, help="output .pkl path")
    parser.set_defaults(func=_make_body_model)

    parser = subparsers.add_parser(
        "render-body",
        help="render the body model in a few poses, front and side",
        description=f"Render the body model alone (clay-shaded, through the project's volume renderer) in the poses "
        f"{', '.join(PREVIEW_POSES)} (columns), from the front and the side (rows), as one contact sheet. It checks the "
        f"body, the skinning and the renderer without any generator. The open procedural body is used unless --smpl "
        f"names a licensed SMPL file. Slow on a CPU: about a minute or two at the default --resolution.",
    )
    parser.add_argument("--out", default="body.png", help=f"output picture, one of {', '.join(IMAGE_SUFFIXES)} (default: body.png)")
    parser.add_argument("--resolution", type=int, default=256, help="pixels per tile side; memory grows with its square (default: 256)")
    parser.add_argument("--smpl", default=None, help="a licensed SMPL .pkl instead of the open body")
    add_progress_argument(parser)
    parser.set_defaults(func=_render_body)
