"""``generate`` and ``try-on``: people from seeds or latents files; one person's clothes on another.

Both write, per person, ``image_NNN.png``, ``semantic_NNN.png`` (colour-coded parts), ``depth_NNN.png``
(16-bit millimetres, 0 = background), ``depth_vis_NNN.png`` (the same depth to look at: near = bright)
and ``normals_NNN.png``, plus ``latents.safetensors``: feeding that
file back with ``generate --latents`` (same model, pose, view angle and settings) reproduces the pictures
exactly; ``try-on --person/--garments`` takes it as person A or B.
"""

from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path

import torch

from ..body.poses import NAMED_POSES
from ..parts import PARTS
from ._common import (
    add_model_arguments,
    check_output_folder,
    configure_pipeline_progress,
    generator_for,
    load_latents,
    load_latents_for,
    load_pipeline,
    model_description,
    picture_width,
    progress_bar,
    save_latents,
    write_pictures,
    write_results,
)

DEFAULT_NUM_IMAGES: int = 1
"""People drawn by ``generate`` when neither ``--num`` nor ``--latents`` is given."""

DEFAULT_TRY_ON_PARTS: tuple[str, ...] = tuple(part for part in PARTS if part != "body")
"""Parts ``try-on`` takes from person B by default: every garment, A keeps the body."""

TRY_ON_PREFIXES: tuple[str, str, str] = ("a_", "b_", "result_")
"""File-name prefixes of person A, person B and the try-on result."""

SEED_B_OFFSET: int = 1
"""Without ``--seed-b`` (nor ``--garments``), person B is drawn with ``--seed`` + this."""

DEFAULT_BATCH_SIZE: int = 4
"""People ``generate`` renders at a time: memory is bounded by one batch whatever ``--num`` is (each
batch's pictures are written before the next is drawn; only the latents of all people, ``6 · z_dim``
floats each, are kept to write ``latents.safetensors`` at the end)."""

PICTURES_PER_PERSON: int = 5
"""Pictures written per person: image, semantic, depth, depth_vis, normals."""


def _add_view_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pose", default=None, metavar="NAME", help=f"body pose, one of {', '.join(NAMED_POSES)} (default: the pipeline's, an A-pose)"
    )
    parser.add_argument("--view-angle", type=float, default=0.0, metavar="DEG", help="turn the people about the vertical axis, degrees (default: 0, facing the camera)")


def _check_view_arguments(args: argparse.Namespace) -> None:
    """Cheap checks of ``--pose`` and ``--view-angle``, before any model is loaded; fills in the default pose."""
    if args.pose is None:
        from ..pipelines.pipeline_semantic_human import DEFAULT_BODY_POSE

        args.pose = DEFAULT_BODY_POSE
    if args.pose not in NAMED_POSES:
        raise ValueError(f"`--pose` must be one of {list(NAMED_POSES)}, got {args.pose!r}.")
    if not math.isfinite(args.view_angle):
        raise ValueError(f"`--view-angle` must be a finite number of degrees, got {args.view_angle!r}.")


def parse_parts(text: str, argument: str = "--parts") -> list[str]:
    """``"tops,bottoms"`` → ``["tops", "bottoms"]``; ValueError naming the allowed part names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"`{argument}` must name at least one of {list(PARTS)} (comma-separated), got {text!r}.")
    unknown = [name for name in names if name not in PARTS]
    if unknown:
        raise ValueError(f"`{argument}` has unknown part name(s) {unknown}; allowed: {list(PARTS)} (comma-separated).")
    return list(dict.fromkeys(names))


def _render(pipe, latents: torch.Tensor, args: argparse.Namespace):
    """Render ``latents (B, K, z_dim)`` in ``--pose`` from ``--view-angle`` at ``--resolution`` (numpy output)."""
    return pipe(
        latents=latents,
        truncation_psi=args.truncation_psi,
        body_pose=NAMED_POSES[args.pose],
        view_angle=math.radians(args.view_angle),
        resolution=args.resolution,
        output_type="np",
    )


def _settings(args: argparse.Namespace) -> str:
    """The command-line options that, with a latents file, reproduce a result."""
    options = f"--pose {args.pose} --view-angle {args.view_angle:g} --resolution {args.resolution}"
    options = f"{model_description(args)} {options}".lstrip()
    if args.truncation_psi is not None:
        options += f" --truncation-psi {args.truncation_psi:g}"
    return options


def _metadata(args: argparse.Namespace) -> dict[str, str]:
    """What a latents file records about how its pictures were made."""
    return dict(
        model=model_description(args) or "the bundled demo checkpoint",
        pose=args.pose,
        view_angle_degrees=f"{args.view_angle:g}",
        resolution=args.resolution,
        truncation_psi="model default" if args.truncation_psi is None else f"{args.truncation_psi:g}",
    )


def _report(written: list[Path], who: str, args: argparse.Namespace, count: int | None = None) -> None:
    """Say what was written: ``written`` holds the latents file and some (``count`` in all) of the pictures."""
    pictures = [path for path in written if path.suffix == ".png"]
    latents = next(path for path in written if path.suffix == ".safetensors")
    count = len(pictures) if count is None else count
    names = ", ".join(path.name for path in pictures[:PICTURES_PER_PERSON]) + (", …" if count > PICTURES_PER_PERSON else "")
    print(f"wrote {who}: {count} pictures in {pictures[0].parent} ({names})")
    print(f"  latents: {latents}")
    print(f"  reproduce: semantichuman-hd generate --latents {shlex.quote(str(latents))} {_settings(args)}")


def _generate(args: argparse.Namespace) -> int:
    _check_view_arguments(args)
    out = check_output_folder(args.out)
    if args.num is not None and args.num <= 0:
        raise ValueError(f"`--num` must be a positive integer, got {args.num}.")
    if args.batch_size <= 0:
        raise ValueError(f"`--batch-size` must be a positive integer, got {args.batch_size}.")
    # A missing or unreadable latents file fails before the model loads.
    stored = None if args.latents is None else load_latents(args.latents)
    pipe = load_pipeline(args)
    if stored is not None:
        stored = load_latents_for(pipe, args.latents, "--latents", latents=stored)
        if args.num is not None and args.num != stored.shape[0]:
            raise ValueError(
                f"`--num` is {args.num} but the `--latents` file {args.latents!r} holds {stored.shape[0]} people; leave --num out."
            )
    total = stored.shape[0] if stored is not None else (args.num or DEFAULT_NUM_IMAGES)
    generator = generator_for(args)
    configure_pipeline_progress(pipe, args, "rendering")
    width = picture_width(total)
    first_pictures: list[Path] = []
    drawn: list[torch.Tensor] = []
    with progress_bar(total, "generate", "person", args) as bar:
        for start in range(0, total, args.batch_size):
            count = min(args.batch_size, total - start)
            # Drawn batch by batch from one generator: the same latents as drawing all at once.
            latents = stored[start : start + count] if stored is not None else pipe.sample_latents(count, generator=generator)
            output = _render(pipe, latents, args)
            written = write_pictures(output, out, start=start, width=width)
            first_pictures = first_pictures or written
            drawn.append(output.latents.cpu())
            del output
            bar.update(count)
    latents_path = save_latents(out / "latents.safetensors", torch.cat(drawn), **_metadata(args))
    _report([*first_pictures, latents_path], f"{total} {'person' if total == 1 else 'people'}", args, count=PICTURES_PER_PERSON * total)
    return 0


def _person_latents(pipe, path: str | None, stored: torch.Tensor | None, seed: int, argument: str) -> torch.Tensor:
    if path is not None:
        return load_latents_for(pipe, path, argument, latents=stored)
    return pipe.sample_latents(1, generator=torch.Generator().manual_seed(seed))


def _try_on(args: argparse.Namespace) -> int:
    _check_view_arguments(args)
    out = check_output_folder(args.out)
    parts = parse_parts(args.parts)
    # Missing or unreadable latents files fail before the model loads.
    stored_person = None if args.person is None else load_latents(args.person, "--person")
    stored_garments = None if args.garments is None else load_latents(args.garments, "--garments")
    pipe = load_pipeline(args)
    person = _person_latents(pipe, args.person, stored_person, args.seed if args.seed_a is None else args.seed_a, "--person")
    garments = _person_latents(
        pipe, args.garments, stored_garments, args.seed + SEED_B_OFFSET if args.seed_b is None else args.seed_b, "--garments"
    )
    if person.shape[0] != garments.shape[0]:
        if person.shape[0] == 1:
            person = person.expand_as(garments).clone()
        elif garments.shape[0] == 1:
            garments = garments.expand_as(person).clone()
        else:
            raise ValueError(
                f"`--person` holds {person.shape[0]} people and `--garments` {garments.shape[0]}: give the same number, or one on either side."
            )
    result = pipe.swap_parts(person, garments, parts)
    metadata = _metadata(args)
    configure_pipeline_progress(pipe, args, "rendering")
    whos = ("person A", "person B (garments)", f"A wearing B's {', '.join(parts)}")
    with progress_bar(len(TRY_ON_PREFIXES), "try-on", "render", args) as bar:
        for prefix, latents, who in zip(TRY_ON_PREFIXES, (person, garments, result), whos):
            written = write_results(_render(pipe, latents, args), out, prefix=prefix, **metadata, try_on_parts=",".join(parts))
            bar.update()
            _report(written, who, args)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate`` and ``try-on`` to the top-level sub-commands."""
    parser = subparsers.add_parser(
        "generate",
        help="generate people: image, semantic, depth and normal pictures plus their latents",
        description="Generate people from --seed (or from a latents file of an earlier run, which reproduces it) and write "
        "image_NNN.png, semantic_NNN.png, depth_NNN.png (16-bit mm), depth_vis_NNN.png (near = bright), normals_NNN.png "
        "and latents.safetensors. People are rendered --batch-size at a time and written as they are done.",
    )
    add_model_arguments(parser)
    parser.add_argument("--num", type=int, default=None, help=f"people to generate (default: {DEFAULT_NUM_IMAGES}, or as many as --latents holds)")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"people rendered at a time; memory grows with it, not with --num (default: {DEFAULT_BATCH_SIZE})"
    )
    parser.add_argument("--latents", default=None, metavar="FILE", help="latents.safetensors of an earlier run: reproduce or re-pose its people")
    _add_view_arguments(parser)
    parser.add_argument("--out", default="outputs/generate", metavar="DIR", help="output folder (default: outputs/generate)")
    parser.set_defaults(func=_generate)

    parser = subparsers.add_parser(
        "try-on",
        help="semantic virtual try-on: person A wearing person B's parts",
        description="Put the chosen parts of person B on person A by swapping their part latents; writes A, B and the result "
        f"(file prefixes {', '.join(TRY_ON_PREFIXES)}).",
    )
    add_model_arguments(parser)
    person = parser.add_mutually_exclusive_group()
    person.add_argument("--person", default=None, metavar="A.safetensors", help="latents file of person A")
    person.add_argument("--seed-a", type=int, default=None, help="seed of person A (default: --seed)")
    garments = parser.add_mutually_exclusive_group()
    garments.add_argument("--garments", default=None, metavar="B.safetensors", help="latents file of person B, who lends the parts")
    garments.add_argument("--seed-b", type=int, default=None, help=f"seed of person B (default: --seed + {SEED_B_OFFSET})")
    parser.add_argument(
        "--parts",
        default=",".join(DEFAULT_TRY_ON_PARTS),
        help=f"comma-separated parts taken from B, of {', '.join(PARTS)} (default: {','.join(DEFAULT_TRY_ON_PARTS)})",
    )
    _add_view_arguments(parser)
    parser.add_argument("--out", default="outputs/try-on", metavar="DIR", help="output folder (default: outputs/try-on)")
    parser.set_defaults(func=_try_on)
