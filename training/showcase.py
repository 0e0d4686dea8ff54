"""Pictures of a trained pipeline for its README and model card.

    python training/showcase.py [--model FOLDER_OR_REPO_ID] [--out docs] [--num-seeds 16]

Writes into ``--out``:

* ``demo_samples.png``: people of seeds 0, 1, … (``semantichuman-hd generate --seed S``): image |
  semantics | normals at the low resolution (enlarged, nearest neighbour) and then at the high
  resolution (guided super-resolution), :data:`PEOPLE_PER_ROW` people per row;
* ``demo_try_on.png``: rows are people, columns the people whose tops and bottoms they wear (the first
  column is each person as generated, the top row the donors as generated);
* ``demo_turntable.gif``: one person turning once, high resolution.

Each panel is cropped to the central half of the (square) render's width: the people are 2:1 portrait.
Without ``--model`` the pipeline is the package's bundled checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from semantichuman_hd import SemanticHumanPipeline  # noqa: E402
from semantichuman_hd.export import save_video  # noqa: E402

PEOPLE_PER_ROW: int = 4
"""People side by side in ``demo_samples.png``."""

TRY_ON_PEOPLE: int = 4
"""Rows and donor columns of ``demo_try_on.png`` (seeds 0 … n−1 wear the garments of seeds 0 … n−1)."""

TRY_ON_PARTS: tuple[str, ...] = ("tops", "bottoms")
"""Parts a person takes from the donor in ``demo_try_on.png``."""

TURNTABLE_SEED: int = 0
TURNTABLE_FRAMES: int = 24

CROP_FRACTION: float = 0.5
"""Share of the render's width kept in each panel (centred)."""

GAP: int = 4
"""White pixels between people and around the grids."""


def _seed_latents(pipe: SemanticHumanPipeline, seeds) -> torch.Tensor:
    """``(len(seeds), K, z_dim)``: person ``s`` is exactly ``semantichuman-hd generate --seed s``'s first person."""
    return torch.cat([pipe.sample_latents(1, generator=torch.Generator().manual_seed(int(seed))) for seed in seeds])


def _panels(output, size: int) -> list[np.ndarray]:
    """Per person, ``(size, size·CROP_FRACTION·3, 3)`` uint8: image | semantics | normals, cropped and resized."""
    people = []
    for image, semantics, normals in zip(output.images, output.semantic_images, output.normals):
        strip = []
        for picture in (image, semantics, normals):
            width = picture.shape[-1]
            keep = int(round(width * CROP_FRACTION))
            left = (width - keep) // 2
            array = (picture[:, :, left : left + keep].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            resample = PIL.Image.NEAREST if picture.shape[-2] < size else PIL.Image.LANCZOS
            strip.append(np.asarray(PIL.Image.fromarray(array).resize((int(size * CROP_FRACTION), size), resample)))
        people.append(np.concatenate(strip, axis=1))
    return people


def _grid(tiles: list[np.ndarray], columns: int) -> PIL.Image.Image:
    """Tiles of one size in rows of ``columns``, :data:`GAP` white pixels apart."""
    height, width = tiles[0].shape[:2]
    rows = (len(tiles) + columns - 1) // columns
    canvas = np.full((rows * (height + GAP) + GAP, columns * (width + GAP) + GAP, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top, left = GAP + row * (height + GAP), GAP + column * (width + GAP)
        canvas[top : top + height, left : left + width] = tile
    return PIL.Image.fromarray(canvas)


def sample_grid(pipe: SemanticHumanPipeline, num_seeds: int) -> PIL.Image.Image:
    latents = _seed_latents(pipe, range(num_seeds))
    size = pipe.config.high_resolution
    with torch.no_grad():
        low = _panels(pipe(latents=latents, resolution="low", output_type="pt"), size)
        high = _panels(pipe(latents=latents, resolution="high", output_type="pt"), size)
    return _grid([np.concatenate([a, b], axis=1) for a, b in zip(low, high)], PEOPLE_PER_ROW)


def try_on_grid(pipe: SemanticHumanPipeline) -> PIL.Image.Image:
    people = _seed_latents(pipe, range(TRY_ON_PEOPLE))
    size = 2 * pipe.config.low_resolution
    blank = np.full((size, int(size * CROP_FRACTION), 3), 255, np.uint8)
    with torch.no_grad():
        alone = [panel[:, : blank.shape[1]] for panel in _panels(pipe(latents=people, output_type="pt"), size)]
        tiles = [blank, *alone]
        for i in range(TRY_ON_PEOPLE):
            dressed = torch.cat([pipe.swap_parts(people[i : i + 1], people[j : j + 1], TRY_ON_PARTS) for j in range(TRY_ON_PEOPLE)])
            tiles += [alone[i], *(panel[:, : blank.shape[1]] for panel in _panels(pipe(latents=dressed, output_type="pt"), size))]
    return _grid(tiles, TRY_ON_PEOPLE + 1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="training/showcase.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="pipeline folder or Hub repo id (default: the bundled checkpoint)")
    parser.add_argument("--out", default="docs", help="folder to write the pictures into (default: docs)")
    parser.add_argument("--num-seeds", type=int, default=16, help="people in demo_samples.png (default 16)")
    args = parser.parse_args(argv)
    if args.num_seeds <= 0:
        parser.error(f"--num-seeds must be a positive integer, got {args.num_seeds}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pipe = SemanticHumanPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    seconds = {}
    start = time.perf_counter()
    sample_grid(pipe, args.num_seeds).save(out / "demo_samples.png")
    seconds["samples"] = time.perf_counter() - start
    start = time.perf_counter()
    try_on_grid(pipe).save(out / "demo_try_on.png")
    seconds["try_on"] = time.perf_counter() - start
    start = time.perf_counter()
    frames = pipe.render_turntable(_seed_latents(pipe, [TURNTABLE_SEED]), num_frames=TURNTABLE_FRAMES, resolution="high")
    save_video(frames, out / "demo_turntable.gif")
    seconds["turntable"] = time.perf_counter() - start
    print(json.dumps({"out": str(out), "seconds": {key: round(value, 1) for key, value in seconds.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
