"""``evaluate``: measure a pipeline against a dataset folder and write JSON plus a Markdown table.

    semantichuman-hd evaluate --model M --data DIR [--metrics fid,disentanglement,...] [--num N]
        [--resolution low|high] [--out results.json] [--quick] [--inception-weights PATH]

The metrics are those of :mod:`semantichuman_hd.evaluation`; ``--out results.json`` also writes
``results.md`` beside it, and the Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from dataclasses import replace

from ._common import add_model_arguments, check_output_file, load_pipeline

REPORT_SUFFIXES: tuple[str, ...] = (".json",)
"""``--out`` must be a JSON file; the Markdown table goes beside it with the suffix ``.md``."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..evaluation.evaluate import METRICS

    parser = subparsers.add_parser(
        "evaluate",
        help="FID/KID (images, normals, faces), disentanglement, SR consistency, guided-sampling fidelity, part statistics",
        description="Evaluate a pipeline against a dataset folder: poses are drawn from its labels and its pictures are "
        "the real set. Writes JSON (--out) and prints a Markdown table. FID/KID need InceptionV3 weights offline: the "
        "[eval] extra or --inception-weights.",
    )
    add_model_arguments(parser)
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder (docs/dataset_format.md)")
    parser.add_argument("--metrics", default=None, help=f"comma-separated subset of {','.join(METRICS)} (default: all that apply)")
    parser.add_argument("--num", type=int, default=None, help="generated people for FID/KID and part statistics (default 50000; --quick: 8)")
    parser.add_argument("--num-real", type=int, default=None, help="dataset pictures for the real statistics (default: all; --quick: 8)")
    parser.add_argument("--num-pairs", type=int, default=None, help="pairs of people of the disentanglement score (default 100; --quick: 1)")
    parser.add_argument("--num-sr", type=int, default=None, help="people of the SR consistency (default 100; --quick: 1)")
    parser.add_argument("--num-guided", type=int, default=None, help="people of the guided-vs-brute-force comparison (default 8; --quick: 1)")
    parser.add_argument("--batch-size", type=int, default=4, help="people generated together (default 4)")
    parser.add_argument("--quick", action="store_true", help="CI-sized run (seconds on the tiny preset); its FID is not comparable")
    parser.add_argument("--inception-weights", default=None, metavar="PATH", help="InceptionV3 weights file (else the [eval] extra's)")
    parser.add_argument("--out", default=None, help="results JSON to write (and the Markdown table beside it, .md)")
    parser.set_defaults(func=_evaluate)


def _json_ready(value):
    """Infinite floats as strings (JSON has no infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    return value


def _evaluate(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import FID_METRICS, FULL_SIZES, METRICS, QUICK_SIZES, check_metrics, evaluate, markdown_report, small_fid_warning
    from ..evaluation.reference import open_dataset

    out = check_output_file(args.out, REPORT_SUFFIXES) if args.out is not None else None
    metrics = check_metrics(args.metrics) if args.metrics is not None else None
    open_dataset(args.data)  # a bad --data fails before the model loads
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    overrides = {name: getattr(args, name) for name in ("num", "num_real", "num_pairs", "num_sr", "num_guided") if getattr(args, name) is not None}
    sizes = replace(sizes, **overrides)
    pipe = load_pipeline(args)
    if args.truncation_psi is not None:
        pipe.register_to_config(truncation_psi=args.truncation_psi)
    chosen = metrics if metrics is not None else METRICS
    message = small_fid_warning(sizes.num) if any(name in FID_METRICS for name in chosen) else None
    if message is not None:
        print(f"warning: {message}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed above; also kept in the report's notes
        try:
            results = evaluate(
                pipe,
                args.data,
                metrics=metrics,
                sizes=sizes,
                quick=args.quick,
                resolution=args.resolution,
                seed=args.seed,
                batch_size=args.batch_size,
                inception_weights=args.inception_weights,
                progress=not args.quiet,
            )
        except ImportError as error:  # torch-fidelity missing: say what to install, no traceback
            raise ValueError(str(error)) from error
    report = markdown_report(results)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(_json_ready(results), indent=2) + "\n")
        out.with_suffix(".md").write_text(report)
        print(f"wrote {out} and {out.with_suffix('.md')}", file=sys.stderr)
    print(report)
    return 0
