"""What the generation commands share: choosing the model, reading and writing latents, and writing one
result as image, semantic picture, depth and normal PNGs plus the latents that reproduce it."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

DEFAULT_MODEL: str | None = None
"""The bundled demo checkpoint (a folder or repo id) once it exists; until then ``None``: commands fall
back to a seeded, randomly initialised ``demo`` preset and say so loudly."""

FALLBACK_PRESET: str = "demo"
"""Preset used when no ``--model`` is given and no demo checkpoint exists."""

PRESET_WEIGHTS_SEED: int = 0
"""Seed of a ``--preset``'s random weights. Fixed, so a preset is one model like a checkpoint: ``--seed``
only draws latents, and a latents file reproduces its result whatever ``--seed`` says."""

LATENTS_KEY: str = "latents"
"""Tensor name inside a latents ``.safetensors`` file."""

DEPTH_PNG_SCALE: float = 1000.0
"""Depth PNGs are 16-bit, in millimetres (``depth_m · DEPTH_PNG_SCALE``); 0 is background."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--preset``, ``--seed``, ``--device``, ``--truncation-psi``, ``--resolution``."""
    default = f"a randomly initialised {FALLBACK_PRESET!r} preset, with a warning" if DEFAULT_MODEL is None else DEFAULT_MODEL
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"pipeline folder or Hub repo id (default: {default})")
    parser.add_argument("--preset", default=None, help="randomly initialised preset instead of --model (tiny, demo, paper)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the latents (default: 0)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--truncation-psi", type=float, default=None, help="truncation toward the average codes (default: the model's)")
    parser.add_argument("--resolution", choices=("low", "high"), default="low", help="stage-1 render or stage-2 super-resolution (default: low)")


def check_device(name: str, argument: str = "--device") -> torch.device:
    """``name`` as a ``torch.device`` that exists on this machine; ValueError otherwise."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"`{argument}` must be a torch device such as 'cpu', 'cuda' or 'cuda:1', got {name!r}.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`{argument}` is {name!r} but CUDA is not available on this machine; use --device cpu.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"`{argument}` is {name!r} but MPS is not available on this machine; use --device cpu.")
    return device


def load_pipeline(args: argparse.Namespace):
    """The pipeline named by ``--model`` / ``--preset``, on ``--device``.

    Without either, a randomly initialised :data:`FALLBACK_PRESET` with a loud warning. Raises
    ``ValueError`` naming the argument for an unknown preset, a ``--model`` that cannot be loaded, an
    unusable ``--device`` or a non-finite ``--truncation-psi``.
    """
    from ..pipelines.pipeline_semantic_human import SemanticHumanPipeline
    from ..presets import PRESETS

    if args.model is not None and args.preset is not None:
        raise ValueError(f"give `--model` or `--preset`, not both (got {args.model!r} and {args.preset!r}).")
    if args.preset is not None and args.preset not in PRESETS:
        raise ValueError(f"`--preset` must be one of {sorted(PRESETS)}, got {args.preset!r}.")
    psi = getattr(args, "truncation_psi", None)
    if psi is not None and not math.isfinite(psi):
        raise ValueError(f"`--truncation-psi` must be a finite number, got {psi!r}.")
    device = check_device(args.device)
    if args.model is not None:
        try:
            pipe = SemanticHumanPipeline.from_pretrained(args.model)
        except (ValueError, OSError) as error:  # not a pipeline folder, missing files, Hub errors
            raise ValueError(f"`--model` {args.model!r} could not be loaded as a SemanticHumanPipeline: {error}") from error
    else:
        preset = args.preset or FALLBACK_PRESET
        if args.preset is None:
            print(
                "\n" + "!" * 78 + f"\n!! No trained checkpoint: using a RANDOMLY INITIALISED '{preset}' preset.\n"
                "!! Its people are untrained noise on the body; pass --model FOLDER_OR_REPO_ID for real results.\n" + "!" * 78 + "\n",
                file=sys.stderr,
            )
        pipe = SemanticHumanPipeline.from_preset(preset, seed=PRESET_WEIGHTS_SEED)
    return pipe.to(device)


def model_description(args: argparse.Namespace) -> str:
    """``--model VALUE`` or ``--preset NAME``: the model arguments that rebuild the same pipeline."""
    import shlex

    if args.model is not None:
        return f"--model {shlex.quote(str(args.model))}"
    return f"--preset {args.preset or FALLBACK_PRESET}"


def generator_for(args: argparse.Namespace) -> torch.Generator:
    """A CPU generator seeded with ``--seed`` (latents are drawn on the CPU so seeds agree across devices)."""
    return torch.Generator().manual_seed(args.seed)


def save_latents(path: str | Path, latents: torch.Tensor, **metadata) -> Path:
    """Write ``latents (B, K, z_dim)`` to a safetensors file, with string ``metadata``."""
    from safetensors.torch import save_file

    from ..io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({LATENTS_KEY: latents.detach().float().cpu().contiguous()}, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
    return path


def load_latents(path: str | Path, argument: str = "--latents") -> torch.Tensor:
    """Read latents written by :func:`save_latents`; clear errors for a missing or malformed file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}` file {str(path)!r} does not exist.")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"`{argument}` file {str(path)!r} is not a readable safetensors file: {error}.") from error
    if LATENTS_KEY not in tensors:
        raise ValueError(f"`{argument}` file {str(path)!r} has no {LATENTS_KEY!r} tensor (has {sorted(tensors)}).")
    return tensors[LATENTS_KEY].clone()  # detached from the file's memory map


def load_latents_for(pipe, path: str | Path, argument: str = "--latents", latents: torch.Tensor | None = None) -> torch.Tensor:
    """Latents from ``path`` checked against ``pipe``: ``(B, K, z_dim)`` of the model's ``z_dim``, finite.
    ``latents`` already read from ``path`` (e.g. to fail before the model loads) are checked, not re-read."""
    from ..parts import NUM_PARTS

    if latents is None:
        latents = load_latents(path, argument)
    if latents.ndim != 3 or tuple(latents.shape[1:]) != (NUM_PARTS, pipe.z_dim):
        raise ValueError(
            f"`{argument}` file {str(path)!r} holds latents of shape {tuple(latents.shape)}; this model needs "
            f"(B, {NUM_PARTS}, {pipe.z_dim}) (was it written with another model?)."
        )
    return pipe.check_latents(latents, argument)


def write_results(output, out_dir: str | Path, prefix: str = "", **metadata) -> list[Path]:
    """Write each person of a ``SemanticHumanPipelineOutput`` (``output_type="np"``) as
    ``{prefix}image_{i:03d}.png`` (RGB), ``semantic_{i:03d}`` (RGB), ``depth_{i:03d}`` (16-bit, mm) and
    ``normals_{i:03d}`` (RGB), plus ``{prefix}latents.safetensors`` carrying ``metadata`` (strings).
    Returns the written paths."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    to_byte = lambda a: (np.clip(a, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
    written = []
    for i in range(len(output.images)):
        pictures = {
            "image": Image.fromarray(to_byte(output.images[i])),
            "semantic": Image.fromarray(to_byte(output.semantic_images[i])),
            "depth": Image.fromarray(np.clip(output.depth[i] * DEPTH_PNG_SCALE, 0, 65535).round().astype(np.uint16)),
            "normals": Image.fromarray(to_byte(output.normals[i])),
        }
        for name, picture in pictures.items():
            path = out_dir / f"{prefix}{name}_{i:03d}.png"
            picture.save(path)
            written.append(path)
    written.append(save_latents(out_dir / f"{prefix}latents.safetensors", output.latents, **metadata))
    return written
