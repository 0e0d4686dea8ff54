"""The ``make-dataset synthetic`` command (registered in :mod:`semantichuman_hd.cli.data`)."""

from __future__ import annotations

import argparse

DEFAULT_NUM: int = 1000
"""Samples generated when ``--num`` is not given."""


def add_synthetic_parser(sources: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """Add the ``make-dataset synthetic`` parser to the ``make-dataset`` sources."""
    from .generator import DEFAULT_IMAGE_SIZE

    parser = sources.add_parser(
        name,
        help="procedural clothed humans on the open body (offline stand-in for DeepFashion)",
        description="Generate clothed people on the body model, in random shapes, plausible poses and varied outfits "
        "(six parts), rendered at the fixed camera into images, label maps and normal maps with exact camera and "
        "SMPL labels. Sample i depends only on (--seed, i), so any number of workers gives the same files.",
    )
    parser.add_argument("--num", type=int, default=DEFAULT_NUM, help=f"number of samples (default {DEFAULT_NUM})")
    parser.add_argument(
        "--image-size",
        "--resolution",
        dest="image_size",
        type=int,
        default=DEFAULT_IMAGE_SIZE,
        help=f"image side in pixels (default {DEFAULT_IMAGE_SIZE}; 1024 for stage 2; --resolution is its deprecated name)",
    )
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--supersample", type=int, default=None, help="image anti-aliasing factor (default 2 up to 512 px, else 1)")
    parser.add_argument("--no-normals", action="store_true", help="do not write normal maps")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    parser.set_defaults(func=_make_synthetic)
    return parser


def _make_synthetic(args: argparse.Namespace) -> int:
    from .generator import generate_dataset

    path = generate_dataset(
        args.out,
        num=args.num,
        image_size=args.image_size,
        seed=args.seed,
        workers=args.workers,
        with_normals=not args.no_normals,
        supersample=args.supersample,
        overwrite=args.overwrite,
        progress=True,
    )
    print(f"wrote {path}")
    return 0
