"""What the generation commands share: choosing the model, reading and writing latents, and writing one
result as image, semantic picture, depth and normal PNGs plus the latents that reproduce it."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..checks import check_finite_number
from ..rendering.compositor import DEPTH_ALPHA_THRESHOLD

PRESET_WEIGHTS_SEED: int = 0
"""Seed of a ``--preset``'s random weights. Fixed, so a preset is one model like a checkpoint: ``--seed``
only draws latents, and a latents file reproduces its result whatever ``--seed`` says."""

LATENTS_KEY: str = "latents"
"""Tensor name inside a latents ``.safetensors`` file."""

DEPTH_PNG_SCALE: float = 1000.0
"""Depth PNGs are 16-bit, in millimetres (``depth_m · DEPTH_PNG_SCALE``); 0 is background."""

DEPTH_VIS_FAR_LEVEL: int = 48
"""Grey level of the farthest foreground point in ``depth_vis`` pictures (the nearest is 255, background
0), so that the whole person stands out from the background."""

PICTURE_INDEX_DIGITS: int = 3
"""Least digits of the person number in picture names (``image_000.png``)."""


FILE_SUFFIXES: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".gif", ".mp4", ".webp", ".glb", ".obj", ".ply", ".npz", ".npy", ".pkl",
    ".safetensors", ".json", ".txt", ".zip",
)  # fmt: skip
"""Suffixes that make an output folder's name look like a file's (``--out x.png`` for a folder is refused:
it is almost always a mistaken argument)."""


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (``.`` for a relative path whose first part is new)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_can_create_in(path: Path, argument: str, what: str) -> None:
    """The folders up to ``path`` can be created and written to: the nearest existing one is a folder
    in which a file can be created (tried, then removed: permissions alone say nothing for root)."""
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ValueError(f"`{argument}` {str(path)!r} cannot be written: {str(existing)!r} is a file, not a folder.")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"`{argument}` {str(path)!r} cannot be written: the folder {str(existing)!r} is not writable ({reason}); choose another {what}.") from None


def check_output_folder(path: str | os.PathLike, argument: str = "--out") -> Path:
    """``path`` as an output folder that can be written, checked before any work.

    Raises:
        ValueError: naming ``argument``, when ``path`` is an existing file, is named like a file (its
            suffix is one of :data:`FILE_SUFFIXES`), or lies in a folder that cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"`{argument}` must be a folder, but {str(path)!r} is an existing file; give a folder to write into.")
    if not path.exists() and path.suffix.lower() in FILE_SUFFIXES:
        raise ValueError(
            f"`{argument}` is the output folder, but {str(path)!r} is named like a {path.suffix} file; give a folder name "
            f"(e.g. {str(path.with_suffix(''))!r})."
        )
    _check_can_create_in(path, argument, "folder")
    return path


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...], argument: str = "--out") -> Path:
    """``path`` as an output file with one of ``suffixes`` that can be written, checked before any work.

    Raises:
        ValueError: naming ``argument``, for another suffix, an existing folder, or a place that cannot
            be written.
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"`{argument}` must be a file ending in one of {list(suffixes)}, got {str(path)!r}.")
    if path.is_dir():
        raise ValueError(f"`{argument}` must be a file, but {str(path)!r} is an existing folder; give a file name such as {str(path / ('out' + suffixes[0]))!r}.")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"`{argument}` {str(path)!r} exists and is not writable.")
    _check_can_create_in(path.parent, argument, "file")
    return path


IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")
"""Picture formats ``render-body`` and ``preview-dataset`` write (by ``--out``'s suffix)."""

MEMORY_HEADROOM: float = 0.8
"""Share of the machine's available memory a command may plan to use."""


def available_memory_bytes() -> int | None:
    """Memory available to a new allocation on this machine (Linux ``MemAvailable``, else the physical
    memory), or None when it cannot be told."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    """``1.3 TB``, ``24 GB``, ``512 MB``."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000:
            return f"{count:.3g} {unit}"
        count /= 1000
    return f"{count:.3g} PB"


def check_fits_in_memory(need: float, argument: str, value, what: str, hint: str, available: int | None = None) -> None:
    """ValueError naming ``argument`` (= ``value``) when ``need`` bytes (for ``what``) exceed
    :data:`MEMORY_HEADROOM` of the available memory, ending with ``hint``; nothing when the available
    memory is unknown."""
    available = available_memory_bytes() if available is None else available
    if available is not None and need > MEMORY_HEADROOM * available:
        raise ValueError(
            f"`{argument}` {value} needs about {format_bytes(need)} of memory for {what}, but this machine has "
            f"{format_bytes(available)} available; {hint}."
        )


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars (results are still reported)")


def progress_bar(total: int, label: str, unit: str, args: argparse.Namespace | None = None, **kwargs):
    """A labelled tqdm bar on stderr, off with ``--quiet``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=label, unit=unit, disable=bool(getattr(args, "quiet", False)), dynamic_ncols=True, **kwargs)


def configure_pipeline_progress(pipe, args: argparse.Namespace, label: str) -> None:
    """The pipeline's own per-call bar: labelled with ``label`` and cleared when done, off with
    ``--quiet``."""
    pipe.set_progress_bar_config(disable=bool(getattr(args, "quiet", False)), desc=label, leave=False, dynamic_ncols=True)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--preset``, ``--seed``, ``--device``, ``--truncation-psi``, ``--resolution``."""
    parser.add_argument("--model", default=None, help="pipeline folder or Hub repo id (default: the demo checkpoint bundled with the package)")
    parser.add_argument("--preset", default=None, help="randomly initialised preset instead of a checkpoint (tiny, demo, paper)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the latents (default: 0)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--truncation-psi", type=float, default=None, help="truncation toward the average codes (default: the model's)")
    parser.add_argument("--resolution", choices=("low", "high"), default="low", help="stage-1 render or stage-2 super-resolution (default: low)")
    add_progress_argument(parser)


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

    Without either, the demo checkpoint bundled with the package (offline). Raises ``ValueError``
    naming the argument for an unknown preset, a ``--model`` that cannot be loaded, an unusable
    ``--device`` or a non-finite ``--truncation-psi``.
    """
    from ..pipelines.pipeline_semantic_human import SemanticHumanPipeline
    from ..presets import PRESETS

    if args.model is not None and args.preset is not None:
        raise ValueError(f"give `--model` or `--preset`, not both (got {args.model!r} and {args.preset!r}).")
    if args.preset is not None and args.preset not in PRESETS:
        raise ValueError(f"`--preset` must be one of {sorted(PRESETS)}, got {args.preset!r}.")
    psi = getattr(args, "truncation_psi", None)
    if psi is not None:
        check_finite_number(psi, "--truncation-psi")
    device = check_device(args.device)
    if args.preset is not None:
        pipe = SemanticHumanPipeline.from_preset(args.preset, seed=PRESET_WEIGHTS_SEED)
    else:
        try:
            pipe = SemanticHumanPipeline.from_pretrained(args.model)
        except (ValueError, OSError) as error:  # not a pipeline folder, missing files, Hub errors
            what = f"`--model` {args.model!r}" if args.model is not None else "the bundled demo checkpoint"
            raise ValueError(f"{what} could not be loaded as a SemanticHumanPipeline: {error}") from error
    return pipe.to(device)


def model_description(args: argparse.Namespace) -> str:
    """``--model VALUE``, ``--preset NAME`` or nothing (the bundled checkpoint): the model arguments that
    rebuild the same pipeline."""
    import shlex

    if args.model is not None:
        return f"--model {shlex.quote(str(args.model))}"
    return f"--preset {args.preset}" if args.preset is not None else ""


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


def depth_visualisation(depth: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """A viewable 8-bit picture ``(H, W)`` of metric ``depth (H, W)`` (0 = background): normalised per
    image over the foreground, near = bright (255), the farthest foreground point
    :data:`DEPTH_VIS_FAR_LEVEL`, background black. With ``alpha (H, W)`` the foreground is only the pixels
    at least :data:`~semantichuman_hd.rendering.compositor.DEPTH_ALPHA_THRESHOLD` opaque (the faint haze
    and soft rims around a person have no surface depth)."""
    depth = np.asarray(depth, dtype=np.float64)
    foreground = depth > 0
    if alpha is not None:
        foreground &= np.asarray(alpha) >= DEPTH_ALPHA_THRESHOLD
    picture = np.zeros(depth.shape, dtype=np.uint8)
    if not foreground.any():
        return picture
    near, far = depth[foreground].min(), depth[foreground].max()
    closeness = (far - depth[foreground]) / (far - near) if far > near else np.ones(int(foreground.sum()))
    picture[foreground] = np.round(DEPTH_VIS_FAR_LEVEL + (255 - DEPTH_VIS_FAR_LEVEL) * closeness).astype(np.uint8)
    return picture


def picture_width(count: int) -> int:
    """Digits of the person numbers in file names: 3, or more for more than 1000 people."""
    return max(PICTURE_INDEX_DIGITS, len(str(max(count - 1, 0))))


def write_pictures(output, out_dir: str | Path, prefix: str = "", start: int = 0, width: int = 3) -> list[Path]:
    """Write each person ``i`` of a ``SemanticHumanPipelineOutput`` (``output_type="np"``) as
    ``{prefix}image_{start + i}.png`` (RGB), ``semantic_…`` (RGB), ``depth_…`` (16-bit, mm),
    ``depth_vis_…`` (8-bit, near = bright) and ``normals_…`` (RGB), numbers ``width`` digits wide.
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
            "depth_vis": Image.fromarray(depth_visualisation(output.depth[i], output.alpha[i])),
            "normals": Image.fromarray(to_byte(output.normals[i])),
        }
        for name, picture in pictures.items():
            path = out_dir / f"{prefix}{name}_{start + i:0{width}d}.png"
            picture.save(path)
            written.append(path)
    return written


def write_results(output, out_dir: str | Path, prefix: str = "", **metadata) -> list[Path]:
    """:func:`write_pictures` of every person of ``output``, plus ``{prefix}latents.safetensors`` carrying
    ``metadata`` (strings). Returns the written paths, the latents last."""
    written = write_pictures(output, out_dir, prefix=prefix)
    written.append(save_latents(Path(out_dir) / f"{prefix}latents.safetensors", output.latents, **metadata))
    return written
