"""``make-dataset SOURCE …`` and ``preview-dataset``: build a training dataset folder, look at one.

``make-dataset`` is a group with one sub-command per data source. A source is registered in
:data:`MAKE_DATASET_SOURCES` as ``name → "module:function"``; the function receives the group's
``subparsers`` and the name, adds its parser and sets ``func`` on it (a callable taking the parsed
``argparse.Namespace`` and returning an exit code). Adding a source (e.g. the synthetic generator) is
one line in that table, or a call to :func:`add_make_dataset_source` before the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

DEFAULT_PREVIEW_NUM: int = 8
"""Samples shown by ``preview-dataset`` by default."""

MAKE_DATASET_SOURCES: dict[str, str] = {
    "deepfashion": "semantichuman_hd.cli.data:add_deepfashion_parser",
    "synthetic": "semantichuman_hd.data.synthetic.cli:add_synthetic_parser",
}
"""``make-dataset`` sources: sub-command name → ``"module:function"`` that adds its parser."""


def add_make_dataset_source(name: str, target: str) -> None:
    """Register a ``make-dataset`` source ``name`` whose parser is added by ``target`` (``"module:function"``).

    Raises:
        ValueError: If the name is taken or ``target`` is not ``"module:function"``.
    """
    if not isinstance(name, str) or not name or name in MAKE_DATASET_SOURCES:
        raise ValueError(f"`name` must be a new make-dataset source name, got {name!r} (taken: {sorted(MAKE_DATASET_SOURCES)}).")
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(f"`target` must be 'module:function', got {target!r}.")
    MAKE_DATASET_SOURCES[name] = target


def _resolve(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def _checking_out(work):
    """``work`` preceded by the check of its dataset folder ``--out`` (every source writes one), so a
    file, a folder named like a file or an unwritable place is refused before any work."""

    def run(args: argparse.Namespace) -> int:
        from ._common import check_output_folder

        check_output_folder(args.out)
        return work(args)

    return run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``make-dataset`` (with its sources) and ``preview-dataset`` to the top-level sub-commands."""
    make = subparsers.add_parser(
        "make-dataset",
        help="build a training dataset folder (docs/dataset_format.md) from a data source",
        description="Build a training dataset folder (images/, segm/, optional normals/, dataset.json) from a data source.",
    )
    sources = make.add_subparsers(dest="source", metavar="SOURCE")
    sources.required = True
    for name, target in MAKE_DATASET_SOURCES.items():
        parser = _resolve(target)(sources, name)
        parser.set_defaults(func=_checking_out(parser.get_default("func")))

    preview = subparsers.add_parser(
        "preview-dataset",
        help="contact sheet (image | labels | normals) and per-part statistics of a dataset folder",
        description="Write a contact sheet of random samples (rows: image | colour-coded labels | normals) and/or "
        "print per-part label statistics as JSON.",
    )
    preview.add_argument("dataset", metavar="DIR", help="dataset folder")
    preview.add_argument("--out", help="contact sheet PNG to write")
    preview.add_argument("--stats", action="store_true", help="print per-part presence rate and pixel coverage as JSON")
    preview.add_argument("--num", type=int, default=DEFAULT_PREVIEW_NUM, help=f"samples on the sheet (default {DEFAULT_PREVIEW_NUM})")
    preview.add_argument("--seed", type=int, default=0, help="seed of the random choice of samples (default 0)")
    preview.set_defaults(func=_preview_dataset)


def add_deepfashion_parser(sources: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """The ``make-dataset deepfashion`` source."""
    from ..data.deepfashion import DEFAULT_IMAGE_SIZE, INTRINSICS_FRAMES

    parser = sources.add_parser(
        name,
        help="DeepFashion-MultiModal images + parsing maps + your SMPL/camera fits",
        description="Convert DeepFashion-MultiModal (images, parsing maps NAME_segm.png) and a file of SMPL + camera "
        "fits into a dataset folder: parsing labels grouped into the six parts, pictures padded white to square "
        "and resized (labels nearest-neighbour). Skipped images are reported and listed in prep_report.json.",
    )
    parser.add_argument("--images", required=True, help="folder of the images (NAME.jpg)")
    parser.add_argument("--parsing", required=True, help="folder of the parsing maps (NAME_segm.png)")
    parser.add_argument("--smpl", required=True, help="SMPL + camera fits: AG3D dataset.json, {name: label} JSON, or .npz")
    parser.add_argument("--out", required=True, help="dataset folder to write")
    parser.add_argument("--normals", help="optional folder of normal maps (NAME.png or NAME_normal.png)")
    parser.add_argument(
        "--image-size",
        "--resolution",
        dest="image_size",
        type=int,
        default=DEFAULT_IMAGE_SIZE,
        help=f"output side in pixels (default {DEFAULT_IMAGE_SIZE}; --resolution is its deprecated name)",
    )
    parser.add_argument(
        "--intrinsics-frame",
        choices=INTRINSICS_FRAMES,
        default="padded",
        help="picture the fits' normalised intrinsics refer to: the white-padded square (default, as AG3D's fits) or the original",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    parser.set_defaults(func=_make_deepfashion)
    return parser


def _make_deepfashion(args: argparse.Namespace) -> int:
    from ..data.deepfashion import prepare_deepfashion

    report = prepare_deepfashion(
        args.images,
        args.parsing,
        args.smpl,
        args.out,
        normals_dir=args.normals,
        image_size=args.image_size,
        intrinsics_frame=args.intrinsics_frame,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=True,
    )
    print(report.summary())
    return 0


def _preview_dataset(args: argparse.Namespace) -> int:
    from ..data.preview import dataset_stats, preview_dataset

    from ._common import IMAGE_SUFFIXES, check_output_file

    if args.out is None and not args.stats:
        raise ValueError("nothing to do: give --out SHEET.png and/or --stats.")
    if args.num <= 0:
        raise ValueError(f"`--num` must be a positive integer, got {args.num}.")
    if args.out is not None:
        check_output_file(args.out, IMAGE_SUFFIXES)
        path = preview_dataset(args.dataset, args.out, num=args.num, seed=args.seed)
        # With --stats, stdout carries only the JSON.
        print(f"wrote {path}", file=sys.stderr if args.stats else sys.stdout)
    if args.stats:
        print(json.dumps(dataset_stats(args.dataset), indent=2))
    return 0
