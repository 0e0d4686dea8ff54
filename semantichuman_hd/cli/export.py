"""``export-mesh``, ``turntable`` and ``animate``: one person as a coloured mesh, turning around, or moving.

Each draws the person from ``--seed`` or takes it from ``--latents FILE`` (a latents file of any
command; ``--index`` picks the person when it holds several), and writes beside its output the
person's image, semantic, depth and normal pictures (``{stem}_image_000.png`` …) and the latents used
(``{stem}_latents.safetensors``), so the same person can be rendered, exported or animated again.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

from ..body.amass import BUNDLED_MOTIONS, load_amass, resolve_motion
from ..body.poses import NAMED_POSES
from ..checks import check_positive_int, check_positive_number
from ..export import (
    DEFAULT_FPS,
    DEFAULT_FRAMES_PER_BATCH,
    DEFAULT_GRID_RESOLUTION,
    DEFAULT_TURNTABLE_FRAMES,
    MESH_SUFFIXES,
    VIDEO_SUFFIXES,
    check_grid_resolution,
    check_mesh_path,
    check_video_path,
    save_video,
)
from ..parts import PARTS, part_indices
from ._common import (
    add_model_arguments,
    check_fits_in_memory,
    check_output_file,
    configure_pipeline_progress,
    generator_for,
    load_latents,
    load_latents_for,
    load_pipeline,
    progress_bar,
    write_results,
)

ALL_PARTS: str = "all"
"""``--part`` value meaning every part, one mesh each."""

RECORD_SEPARATOR: str = "_"
"""Beside output ``dir/stem.ext`` go the person's pictures and latents, as :func:`write_results` names
them with the prefix ``stem`` + this: ``stem_image_000.png`` … ``stem_latents.safetensors``."""

FRAME_BYTES_PER_PIXEL: int = 6
"""Memory per pixel of a turntable or animation frame: every RGB frame is kept until the video is
written (3 bytes), and the video writer makes an array of each (3 more)."""

LATENTS_SUFFIX: str = RECORD_SEPARATOR + "latents.safetensors"
"""The latents used are written beside the output as ``{stem}`` + this."""


def latents_path_for(out: str | Path) -> Path:
    """Where the latents of output ``out`` go: ``dir/stem_latents.safetensors``."""
    out = Path(out)
    return out.with_name(out.stem + LATENTS_SUFFIX)


def parse_part_names(text: str | None) -> list[str] | None:
    """``--part``: None (the whole person), ``"all"``, or comma-separated part names."""
    if text is None:
        return None
    if text.strip() == ALL_PARTS:
        return list(PARTS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"`--part` must be '{ALL_PARTS}' or comma-separated names of {list(PARTS)}, got {text!r}.")
    part_indices(names, "--part")
    return list(dict.fromkeys(names))


def _check_positive(value, argument: str, integer: bool = True) -> None:
    """An optional positive integer (or, with ``integer=False``, number) option."""
    if value is not None:
        (check_positive_int if integer else check_positive_number)(value, argument)


def _check_pose(name: str | None) -> None:
    if name is not None and name not in NAMED_POSES:
        raise ValueError(f"`--pose` must be one of {list(NAMED_POSES)}, got {name!r}.")


def _video_path(out: str) -> Path:
    try:
        path = check_video_path(out, "--out")
    except ImportError as error:  # .mp4 without imageio-ffmpeg: a usage problem, reported like one
        raise ValueError(str(error)) from error
    return check_output_file(path, VIDEO_SUFFIXES)


def _check_frames_fit(pipe, count: int, args: argparse.Namespace, argument: str) -> None:
    """Refuse, before rendering, a video whose frames cannot all be held in memory."""
    size = pipe.config.high_resolution if args.resolution == "high" else pipe.config.low_resolution
    need = count * size * size * FRAME_BYTES_PER_PIXEL
    check_fits_in_memory(need, argument, count, f"{count} frames of {size}² kept until the video is written", "use fewer frames or --resolution low")


def _render_frames(pipe, latents: torch.Tensor, count: int, args: argparse.Namespace, label: str, per_frame) -> list:
    """Render one person ``count`` times, ``--frames-per-batch`` at a time, under a labelled frame bar;
    ``per_frame(slice)`` gives the per-frame ``__call__`` arguments of a batch."""
    frames = []
    with progress_bar(count, label, "frame", args) as bar:
        for start in range(0, count, args.frames_per_batch):
            frame_slice = slice(start, min(start + args.frames_per_batch, count))
            batch = frame_slice.stop - frame_slice.start
            output = pipe(latents=latents.expand(batch, -1, -1), resolution=args.resolution, truncation_psi=args.truncation_psi, output_type="pil", **per_frame(frame_slice))
            frames.extend(output.images)
            bar.update(batch)
    return frames


def _person(pipe, args: argparse.Namespace, stored: torch.Tensor | None) -> torch.Tensor:
    """``(1, K, z_dim)``: person ``--index`` of the ``--latents`` read by :func:`_preflight_latents`
    (``stored``), or one drawn from ``--seed``."""
    if args.latents is None:
        return pipe.sample_latents(1, generator=generator_for(args))
    latents = load_latents_for(pipe, args.latents, latents=stored)
    if not 0 <= args.index < latents.shape[0]:
        raise ValueError(f"`--index` must be in [0, {latents.shape[0] - 1}] for {args.latents!r}, got {args.index}.")
    return latents[args.index : args.index + 1]


def _preflight_latents(args: argparse.Namespace) -> torch.Tensor | None:
    """Read ``--latents`` (if given) so that a missing or unreadable file fails before the model loads."""
    if args.index < 0:
        raise ValueError(f"`--index` must be a non-negative integer, got {args.index}.")
    return None if args.latents is None else load_latents(args.latents)


def _write_record(pipe, latents: torch.Tensor, out: Path, args: argparse.Namespace, body_pose=None, view_angle: float = 0.0, **metadata) -> Path:
    """Beside ``out``: the person's image, semantic, depth and normal pictures (as ``generate`` writes
    them) and the latents used, so the result can be reproduced or fed to any other command."""
    output = pipe(latents=latents, resolution=args.resolution, truncation_psi=args.truncation_psi, body_pose=body_pose, view_angle=view_angle, output_type="np")
    written = write_results(output, out.parent, prefix=out.stem + RECORD_SEPARATOR, resolution=args.resolution, **metadata)
    print(f"  pictures: {', '.join(path.name for path in written[:-1])} in {out.parent}")
    print(f"  latents: {written[-1]}")
    return written[-1]


# ----------------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------------


def _export_mesh(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.format is not None:
        suffix = "." + args.format
        if out.suffix == "":
            out = out.with_suffix(suffix)
        elif out.suffix.lower() != suffix:
            raise ValueError(f"`--format` is {args.format!r} but `--out` {args.out!r} ends in {out.suffix!r}; give one or make them agree.")
    check_mesh_path(out, "--out")
    check_output_file(out, MESH_SUFFIXES)
    check_grid_resolution(args.grid_resolution, "--grid-resolution")
    names = parse_part_names(args.part)
    _check_pose(args.pose)
    stored = _preflight_latents(args)

    pipe = load_pipeline(args)
    configure_pipeline_progress(pipe, args, "pictures")
    latents = _person(pipe, args, stored)
    body_pose = None if args.pose is None else NAMED_POSES[args.pose]
    with progress_bar(1, f"export-mesh: marching cubes at {args.grid_resolution}³", "mesh set", args) as bar:
        result = pipe.export_mesh(
            latents,
            out,
            part=names,
            resolution=args.resolution,
            grid_resolution=args.grid_resolution,
            truncation_psi=args.truncation_psi,
            body_pose=body_pose,
        )
        bar.update()
    for name in result.empty_parts:
        print(f"note: {name} has no surface for this person (nothing of it lies in the body's shell): no mesh written.", file=sys.stderr)
    for name, path in result.paths.items():
        mesh = result.meshes[name]
        print(f"wrote {path} ({name}: {len(mesh.vertices)} vertices, {len(mesh.faces)} faces, {'posed ' + args.pose if args.pose else 'canonical pose'})")
    if not result.paths:
        print("semantichuman-hd export-mesh: nothing written: every requested part is empty.", file=sys.stderr)
        return 1
    _write_record(pipe, latents, out, args, body_pose=body_pose, part=args.part or "person", grid_resolution=args.grid_resolution)
    return 0


def _turntable(args: argparse.Namespace) -> int:
    out = _video_path(args.out)
    _check_positive(args.frames, "--frames")
    _check_positive(args.fps, "--fps", integer=False)
    _check_positive(args.frames_per_batch, "--frames-per-batch")
    _check_pose(args.pose)
    stored = _preflight_latents(args)

    pipe = load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    latents = _person(pipe, args, stored)
    body_pose = None if args.pose is None else NAMED_POSES[args.pose]
    _check_frames_fit(pipe, args.frames, args, "--frames")
    # The angles of SemanticHumanPipeline.render_turntable, rendered here batch by batch under a frame bar.
    angles = 2 * math.pi * torch.arange(args.frames, dtype=torch.float32) / args.frames
    frames = _render_frames(pipe, latents, args.frames, args, "turntable", lambda frames: {"view_angle": angles[frames], "body_pose": body_pose})
    save_video(frames, out, fps=args.fps)
    print(f"wrote {out} ({len(frames)} frames of {frames[0].width}×{frames[0].height} at {args.fps:g} fps)")
    configure_pipeline_progress(pipe, args, "pictures")
    _write_record(pipe, latents, out, args, body_pose=body_pose, frames=args.frames)
    return 0


def _animate(args: argparse.Namespace) -> int:
    out = _video_path(args.out)
    _check_positive(args.stride, "--stride")
    _check_positive(args.max_frames, "--max-frames")
    _check_positive(args.fps, "--fps", integer=False)
    _check_positive(args.frames_per_batch, "--frames-per-batch")
    if not math.isfinite(args.view_angle):
        raise ValueError(f"`--view-angle` must be a finite number of degrees, got {args.view_angle!r}.")
    motion = load_amass(resolve_motion(args.poses), argument="--poses").subsample(args.stride, args.max_frames)
    stored = _preflight_latents(args)
    fps = args.fps if args.fps is not None else (motion.framerate or DEFAULT_FPS)

    pipe = load_pipeline(args)
    pipe.set_progress_bar_config(disable=True)
    latents = _person(pipe, args, stored)
    _check_frames_fit(pipe, len(motion), args, "--max-frames")
    # SemanticHumanPipeline.animate's frames, rendered here batch by batch under a frame bar.
    view_angle = math.radians(args.view_angle)
    frames = _render_frames(
        pipe,
        latents,
        len(motion),
        args,
        "animate",
        lambda frames: {"body_pose": motion.body_pose[frames], "global_orient": motion.global_orient[frames], "view_angle": view_angle},
    )
    save_video(frames, out, fps=fps)
    print(f"wrote {out} ({len(frames)} frames of {args.poses} at {fps:g} fps)")
    configure_pipeline_progress(pipe, args, "pictures")
    _write_record(pipe, latents, out, args, view_angle=math.radians(args.view_angle), poses=args.poses, stride=args.stride)
    return 0


def _add_person_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--latents", default=None, metavar="FILE", help="latents .safetensors of an earlier run instead of --seed")
    parser.add_argument("--index", type=int, default=0, help="which person of --latents (default: 0)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export-mesh``, ``turntable`` and ``animate`` to the top-level sub-commands."""
    parser = subparsers.add_parser(
        "export-mesh",
        help="export one person, or its parts, as vertex-coloured meshes (.glb, .obj, .ply)",
        description="Marching cubes on the canonical part fields; the format follows --out's suffix. With several parts "
        "each goes to {stem}_{part}{suffix}. The latents used are written to {stem}" + LATENTS_SUFFIX + ".",
    )
    _add_person_arguments(parser)
    parser.add_argument("--out", default="outputs/person.glb", metavar="FILE", help=f"mesh file, one of {', '.join(MESH_SUFFIXES)} (default: outputs/person.glb)")
    parser.add_argument("--format", choices=[suffix[1:] for suffix in MESH_SUFFIXES], default=None, help="mesh format (default: --out's suffix)")
    parser.add_argument(
        "--part", default=None, metavar="NAMES", help=f"comma-separated parts of {', '.join(PARTS)}, or '{ALL_PARTS}', one mesh each (default: the whole person)"
    )
    parser.add_argument("--grid-resolution", type=int, default=DEFAULT_GRID_RESOLUTION, help=f"grid nodes along the body's longest side (default: {DEFAULT_GRID_RESOLUTION})")
    parser.add_argument("--pose", default=None, metavar="NAME", help=f"pose the mesh: one of {', '.join(NAMED_POSES)} (default: the canonical pose)")
    parser.set_defaults(func=_export_mesh)

    parser = subparsers.add_parser(
        "turntable",
        help="one person turning around, as .gif or .mp4",
        description="Render --frames views around the person (the body turns) and write them as a looping GIF or an MP4 "
        "(MP4 needs imageio-ffmpeg). The latents used are written to {stem}" + LATENTS_SUFFIX + ".",
    )
    _add_person_arguments(parser)
    parser.add_argument("--out", default="outputs/turntable.gif", metavar="FILE", help="x.gif or x.mp4 (default: outputs/turntable.gif)")
    parser.add_argument("--frames", type=int, default=DEFAULT_TURNTABLE_FRAMES, help=f"frames of the full turn (default: {DEFAULT_TURNTABLE_FRAMES})")
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frames per second (default: {DEFAULT_FPS:g})")
    parser.add_argument("--pose", default=None, metavar="NAME", help=f"body pose, one of {', '.join(NAMED_POSES)} (default: the pipeline's, an A-pose)")
    parser.add_argument("--frames-per-batch", type=int, default=DEFAULT_FRAMES_PER_BATCH, help=f"frames rendered together (default: {DEFAULT_FRAMES_PER_BATCH})")
    parser.set_defaults(func=_turntable)

    parser = subparsers.add_parser(
        "animate",
        help="one person following an AMASS-style motion (.npz), as .gif or .mp4",
        description="Render the person in every --stride-th pose of an AMASS-style .npz (poses (T, 156) SMPL-H or (T, 72) "
        "SMPL, trans; z-up) and write a GIF or MP4. The latents used are written to {stem}" + LATENTS_SUFFIX + ".",
    )
    _add_person_arguments(parser)
    parser.add_argument(
        "--poses",
        required=True,
        metavar="FILE.npz|NAME",
        help=f"AMASS-style motion file, or the name of a motion shipped with the package: {', '.join(BUNDLED_MOTIONS)}",
    )
    parser.add_argument("--out", default="outputs/animation.gif", metavar="FILE", help="x.gif or x.mp4 (default: outputs/animation.gif)")
    parser.add_argument("--stride", type=int, default=1, help="use every N-th frame of the motion (default: 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="at most this many frames (default: all)")
    parser.add_argument("--fps", type=float, default=None, help=f"frames per second (default: the motion's frame rate / --stride, else {DEFAULT_FPS:g})")
    parser.add_argument("--view-angle", type=float, default=0.0, metavar="DEG", help="turn the motion about the vertical axis, degrees (default: 0)")
    parser.add_argument("--frames-per-batch", type=int, default=DEFAULT_FRAMES_PER_BATCH, help=f"frames rendered together (default: {DEFAULT_FRAMES_PER_BATCH})")
    parser.set_defaults(func=_animate)
