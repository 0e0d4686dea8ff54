"""Bundle a trained pipeline folder into the package as its default checkpoint (fp16 safetensors).

    python training/bundle.py RUN/pipeline [--out semantichuman_hd/checkpoints/demo]

The EMA weights of ``RUN/pipeline`` (``training/train.py``'s export) are written as the ``fp16`` variant
with their SHA-256 manifest into a folder beside ``--out``, checked (at most
:data:`~semantichuman_hd.hub.BUNDLED_MAX_BYTES` in all; the fp16 model renders what the float32 one
renders), and only then swapped in, so an interrupted or failed run leaves the bundled checkpoint as it
was. Prints a JSON record: bytes, parameters and the PSNR of the fp16 model's renders against the
float32 model's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from semantichuman_hd import SemanticHumanPipeline  # noqa: E402
from semantichuman_hd.evaluation.pictures import psnr  # noqa: E402
from semantichuman_hd.hub import BUNDLED_MAX_BYTES, BUNDLED_MODEL_DIR, BUNDLED_VARIANT, MODEL_CARD  # noqa: E402
from semantichuman_hd.io import atomic_folder  # noqa: E402

MIN_FP16_PSNR: float = 40.0
"""Least PSNR (dB) of the fp16 checkpoint's low-resolution renders against the float32 one's: rounding
the weights must not change the people."""

CHECK_SEEDS: int = 4
"""People rendered by the fp16 check."""

CARD: str = """# SemanticHuman-HD `demo` checkpoint

The trained `demo` checkpoint that the `semantichuman-hd` package bundles and loads by default
(`SemanticHumanPipeline.from_pretrained()` with no argument; fp16 safetensors, loaded as float32). Its
training data, procedure, metrics and limitations are in the project's `model_card.md`.
"""


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def bundle(source: str | os.PathLike, out: str | os.PathLike = BUNDLED_MODEL_DIR) -> dict:
    """Write ``source``'s weights as the fp16 checkpoint ``out`` (see the module docstring); returns the record.

    Raises:
        ValueError: when the fp16 folder exceeds :data:`BUNDLED_MAX_BYTES` or its renders differ from the
            float32 model's by more than :data:`MIN_FP16_PSNR` allows; ``out`` is then left untouched.
    """
    out = Path(out)
    pipe = SemanticHumanPipeline.from_pretrained(source)
    with atomic_folder(out) as partial:  # a failed check leaves `out` as it was
        SemanticHumanPipeline.from_pretrained(source, dtype=torch.float16).save_pretrained(partial, variant=BUNDLED_VARIANT)
        (partial / MODEL_CARD).write_text(CARD, encoding="utf-8")
        size = folder_bytes(partial)
        if size > BUNDLED_MAX_BYTES:
            raise ValueError(f"the fp16 checkpoint of {source} takes {size:,} bytes; the bundled checkpoint may take at most {BUNDLED_MAX_BYTES:,}.")
        loaded = SemanticHumanPipeline.from_pretrained(partial, variant=BUNDLED_VARIANT, dtype=torch.float32)
        latents = pipe.sample_latents(CHECK_SEEDS, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            fidelity = psnr(loaded(latents=latents, output_type="pt").images, pipe(latents=latents, output_type="pt").images)
        if fidelity < MIN_FP16_PSNR:
            raise ValueError(f"the fp16 weights render at {fidelity:.1f} dB against the float32 ones; at least {MIN_FP16_PSNR:g} dB was expected.")
    parameters = sum(p.numel() for module in (pipe.mapper, pipe.local_generators, pipe.super_resolution) for p in module.parameters())
    return {"source": str(source), "out": str(out), "bytes": size, "parameters": parameters, "fp16_psnr_db": round(fidelity, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="training/bundle.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="pipeline folder to bundle (a training run's OUTPUT_DIR/pipeline)")
    parser.add_argument("--out", default=str(BUNDLED_MODEL_DIR), help="checkpoint folder to write (default: the package's bundled checkpoint)")
    args = parser.parse_args(argv)
    try:
        record = bundle(args.source, args.out)
    except (ValueError, OSError) as error:
        print(f"bundle.py: error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
