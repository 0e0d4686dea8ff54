"""Gradio Space for semantic virtual try-on with SemanticHuman-HD.

A thin web front end over the public API of :class:`semantichuman_hd.SemanticHumanPipeline`: generate a
person from a seed, re-roll or lock single parts, dress person A in person B's garments
(:meth:`~semantichuman_hd.SemanticHumanPipeline.swap_parts`), move one part between two seeds
(:meth:`~semantichuman_hd.SemanticHumanPipeline.interpolate_part`), spin a turntable
(:meth:`~semantichuman_hd.SemanticHumanPipeline.render_turntable`) and download a part or the whole
person as a mesh (:meth:`~semantichuman_hd.SemanticHumanPipeline.export_mesh`).

A person is six seeds, one per part in ``PARTS`` order: part ``k`` uses the latent that
``pipe.sample_latents(1, torch.Generator().manual_seed(seed_k))`` draws for part ``k``. Six equal seeds
``S`` are exactly the person of ``semantichuman-hd generate --seed S``; changing one part's seed changes
that part only. Every event is a plain method of :class:`SemanticHumanSpace` (tests call them directly)
and an API endpoint of the app (``gradio_client`` calls them by name).

Run ``python spaces/app.py``. Environment:

``SEMANTICHUMAN_MODEL``
    A pipeline folder or Hub repo id to load with ``SemanticHumanPipeline.from_pretrained`` (default: the
    demo checkpoint bundled with the package).
``SEMANTICHUMAN_PRESET``
    A randomly initialised preset (``tiny``, ``demo``, ``paper``) instead of a checkpoint (the page then
    says so in a banner).
``SEMANTICHUMAN_DEVICE``
    The torch device (default: ``cuda`` when available, else ``cpu``).
``SEMANTICHUMAN_CONCURRENCY``
    How many renders run at once (default 1: one render already uses every CPU core or the GPU).
"""

from __future__ import annotations

import atexit
import functools
import html
import itertools
import math
import os
import secrets
import shlex
import shutil
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import gradio as gr
import numpy as np
import PIL.Image
import torch

from semantichuman_hd import NUM_PARTS, PART_COLORS, PARTS, SemanticHumanPipeline
from semantichuman_hd.body.amass import BUNDLED_MOTIONS, MOTION_DATA_DIR, load_amass
from semantichuman_hd.body.poses import NAMED_POSES
from semantichuman_hd.checks import check_choice, check_number_in_range
from semantichuman_hd.cli._common import PRESET_WEIGHTS_SEED, depth_visualisation
from semantichuman_hd.export import WHOLE_PERSON, save_video
from semantichuman_hd.host_memory import reuse_freed_host_memory
from semantichuman_hd.presets import PRESETS

# -- settings --------------------------------------------------------------------------------------

MODEL_ENV: str = "SEMANTICHUMAN_MODEL"
"""Environment variable naming the pipeline folder or Hub repo id to load."""

PRESET_ENV: str = "SEMANTICHUMAN_PRESET"
"""Environment variable naming a randomly initialised preset to use instead of a checkpoint."""

BUNDLED_MODEL_NAME: str = "the bundled demo checkpoint"
"""How the page names the checkpoint that ships with the package (loaded when neither variable is set)."""

DEVICE_ENV: str = "SEMANTICHUMAN_DEVICE"
"""Environment variable naming the torch device."""

CONCURRENCY_ENV: str = "SEMANTICHUMAN_CONCURRENCY"
"""Environment variable: how many renders run at the same time."""

DEFAULT_CONCURRENCY: int = 1
"""Renders at the same time: one render already keeps every CPU core (or the GPU) busy."""

QUEUE_MAX_SIZE: int = 64
"""Requests waiting in the queue at most; later ones are told the queue is full."""

RENDER_CONCURRENCY_ID: str = "render"
"""Every event that runs the model shares this concurrency group, so the limit holds across events."""

MAX_SEED: int = 2**31 - 1
"""Largest seed accepted (seeds are 0 … MAX_SEED)."""

MAX_VIEW_ANGLE_DEGREES: float = 180.0
"""View angles run from −MAX_VIEW_ANGLE_DEGREES to +MAX_VIEW_ANGLE_DEGREES (0 = facing the camera)."""

TRUNCATION_RANGE: tuple[float, float] = (0.0, 1.0)
"""Truncation ψ: 0 is the average person, 1 no truncation."""

TURNTABLE_FRAMES_RANGE: tuple[int, int] = (4, 48)
"""Frames of one turn, smallest and largest."""

DEFAULT_TURNTABLE_FRAMES: int = 16
"""Frames of one turn in the form."""

TURNTABLE_FPS: float = 8.0
"""Frames per second of turntable videos."""

TURNTABLE_FORMATS: tuple[str, ...] = ("gif", "mp4")
"""Turntable download formats (the preview is always a GIF)."""

MESH_GRID_RANGE: tuple[int, int] = (32, 256)
"""Marching-cubes grid nodes along the body's longest side, smallest and largest."""

DEFAULT_MESH_GRID: int = 96
"""Marching-cubes grid in the form."""

MESH_FORMATS: tuple[str, ...] = (".glb", ".obj")
"""Mesh formats the 3D viewer shows and the download offers."""

MAX_KEPT_FILES: int = 64
"""Files this process keeps in its temporary folder; the oldest are deleted beyond that."""

MAX_UPLOAD_SIZE: str = "20mb"
"""Largest file a visitor may upload (an AMASS sequence is a few MB)."""

GRADIO_CACHE_LIFETIME_S: int = 3600
"""Gradio's copies of served files are deleted this long after they were made (checked as often)."""

MOTION_POSE: str = "amass"
"""Pose choice meaning: one frame of the uploaded AMASS ``.npz``."""

POSE_CHOICES: list[tuple[str, str]] = [(name, name) for name in NAMED_POSES] + [("frame of an AMASS .npz", MOTION_POSE)]
"""(label, value) of the pose choices: the package's named poses and an uploaded motion frame."""

DEFAULT_POSE: str = "a-pose"
"""Pose in the form."""

RESOLUTION_CHOICES: list[tuple[str, str]] = [("low (stage 1)", "low"), ("high (4× super-resolution)", "high")]
"""(label, value) of the render resolutions."""

DEFAULT_TRY_ON_PARTS: tuple[str, ...] = ("tops", "outerwear", "bottoms", "shoes")
"""Garments taken from person B by default."""

MESH_PART_CHOICES: list[tuple[str, str]] = [("whole person", WHOLE_PERSON)] + [(name, name) for name in PARTS]
"""(label, value) of the mesh choices: the whole person or one part."""

EXAMPLES: list[list] = [[7, "a-pose", 0.0], [42, "walking", 30.0], [1234, "arms-up", -45.0], [2024, "t-pose", 180.0]]
"""(seed, pose, view angle in degrees) examples under the form."""

BUNDLED_MOTION: str = "walk"
"""The package's bundled motion offered as an example upload (a procedural walk cycle in AMASS layout)."""

BUNDLED_MOTION_FRAME: int = 10
"""Frame of the bundled motion in the example."""

DEFAULT_SEED_A: int = 7
"""Seed of person A when the page opens."""

DEFAULT_SEED_B: int = 11
"""Seed of person B (try-on, interpolation) when the page opens."""

VIEW_ANGLE_STEP: float = 5.0
"""Step of the view-angle slider, degrees."""

FRACTION_STEP: float = 0.05
"""Step of the truncation and interpolation-weight sliders."""

MESH_GRID_STEP: int = 16
"""Step of the mesh grid slider."""

PICTURE_HEIGHT: int = 280
"""Height of the main pictures on the page, pixels (small renders are enlarged to fit)."""

TAB_PICTURE_HEIGHT: int = 256
"""Height of the pictures in the tabs, pixels."""

MESH_VIEWER_HEIGHT: int = 360
"""Height of the 3D viewer, pixels."""

UPLOAD_HEIGHT: int = 120
"""Height of the motion upload box, pixels."""

CSS: str = """
#random-weights-warning { border: 2px solid #d97706; background: #fef3c7; color: #78350f; border-radius: 8px; padding: 8px 14px; }
#random-weights-warning * { color: #78350f !important; }
.part-legend { display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 0.9em; }
.person-picture img { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }
.part-legend span.swatch { display: inline-block; width: 0.95em; height: 0.95em; border-radius: 3px; margin-right: 4px; vertical-align: -0.1em; border: 1px solid #0003; }
"""
"""Page style (passed to ``launch``, as Gradio 6 wants)."""

THEME = gr.themes.Soft(primary_hue="rose", secondary_hue="indigo")
"""Page theme (passed to ``launch``)."""


# -- temporary files -------------------------------------------------------------------------------


class BoundedTempFiles:
    """A per-process temporary folder that keeps only the newest ``max_files`` files.

    Parameters:
        max_files (`int`): files kept; creating one more deletes the oldest.
        root (`str` or `os.PathLike`, *optional*): the folder; default a fresh one under the system's
            temporary directory, removed when the process exits.
    """

    def __init__(self, max_files: int = MAX_KEPT_FILES, root: str | os.PathLike | None = None):
        if isinstance(max_files, bool) or not isinstance(max_files, int) or max_files <= 0:
            raise ValueError(f"`max_files` must be a positive integer, got {max_files!r}.")
        self.max_files = max_files
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="semantichuman-space-"))
            atexit.register(shutil.rmtree, self.root, ignore_errors=True)
        else:
            self.root = Path(root)
            self.root.mkdir(parents=True, exist_ok=True)
        self._paths: deque[Path] = deque()
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def new_path(self, name: str) -> Path:
        """A fresh path ``<root>/<number>-<name>`` to write; deletes the oldest files beyond ``max_files``."""
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        with self._lock:
            path = self.root / f"{next(self._counter):06d}-{safe}"
            self._paths.append(path)
            while len(self._paths) > self.max_files:
                self._paths.popleft().unlink(missing_ok=True)
        return path

    def files(self) -> list[Path]:
        """The files in the folder now."""
        return sorted(p for p in self.root.iterdir() if p.is_file())


# -- the model -------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """The pipeline the Space serves and how to describe it on the page."""

    pipeline: SemanticHumanPipeline
    name: str
    """The folder, repo id, ``preset NAME`` or :data:`BUNDLED_MODEL_NAME` it came from."""
    random_weights: bool
    """True for a randomly initialised preset (the page then shows a warning)."""
    cli_arguments: str
    """The ``semantichuman-hd`` model arguments that load the same model (empty for the bundled one)."""


def default_device() -> str:
    """``$SEMANTICHUMAN_DEVICE``, else ``cuda`` when available, else ``cpu``."""
    return os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")


def load_model(model: str | None = None, preset: str | None = None, device: str | None = None) -> LoadedModel:
    """The pipeline named by ``model`` (a folder or Hub repo id) or ``preset`` (random weights).

    With neither: the demo checkpoint bundled with the package. Raises ``ValueError`` for both at once,
    an unknown preset or a model that cannot be loaded.
    """
    if model and preset:
        raise ValueError(f"set {MODEL_ENV} or {PRESET_ENV}, not both (got {model!r} and {preset!r}).")
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"{PRESET_ENV} must be one of {sorted(PRESETS)}, got {preset!r}.")
    if preset:
        pipe = SemanticHumanPipeline.from_preset(preset, seed=PRESET_WEIGHTS_SEED)
        loaded = LoadedModel(pipe, f"preset {preset}", random_weights=True, cli_arguments=f"--preset {preset}")
    else:
        try:
            pipe = SemanticHumanPipeline.from_pretrained(model or None)
        except (ValueError, OSError) as error:
            what = f"{MODEL_ENV}={model!r}" if model else BUNDLED_MODEL_NAME
            raise ValueError(f"{what} could not be loaded as a SemanticHumanPipeline: {error}") from error
        name, arguments = (str(model), f"--model {shlex.quote(str(model))}") if model else (BUNDLED_MODEL_NAME, "")
        loaded = LoadedModel(pipe, name, random_weights=False, cli_arguments=arguments)
    loaded.pipeline.to(device or default_device())
    return loaded


@functools.lru_cache(maxsize=1)
def model_from_environment() -> LoadedModel:
    """:func:`load_model` from ``$SEMANTICHUMAN_MODEL``, ``$SEMANTICHUMAN_PRESET`` and
    ``$SEMANTICHUMAN_DEVICE``, loaded once per process."""
    return load_model(os.environ.get(MODEL_ENV) or None, os.environ.get(PRESET_ENV) or None, default_device())


# -- input checks ----------------------------------------------------------------------------------


def _whole_number(value, argument: str, low: int, high: int) -> int:
    """``value`` as an ``int`` if it is a whole number in ``[low, high]``: Gradio's number boxes and sliders
    may send ``3.0`` for 3 (``bool`` refused)."""
    value = check_number_in_range(value, argument, low, high)
    if value != int(value):
        raise ValueError(f"`{argument}` must be a whole number in [{low}, {high}], got {value!r}.")
    return int(value)


def check_seeds(part_seeds: Sequence) -> list[int]:
    """The six part seeds as ints; ``ValueError`` naming the part for a missing or out-of-range seed."""
    if len(part_seeds) != NUM_PARTS:
        raise ValueError(f"a person needs {NUM_PARTS} part seeds ({', '.join(PARTS)}), got {len(part_seeds)}.")
    return [_whole_number(seed, f"{name} seed", 0, MAX_SEED) for name, seed in zip(PARTS, part_seeds)]


def _user_errors(function: Callable) -> Callable:
    """Show bad input as a message on the page (``gr.Error``) instead of a traceback."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ValueError, FileNotFoundError) as error:
            raise gr.Error(str(error), title="Cannot do that", print_exception=False) from error
        except torch.OutOfMemoryError as error:
            raise gr.Error("Out of memory: try the low resolution, fewer turntable frames or a coarser mesh grid.", title="Out of memory") from error

    return wrapper


# -- pictures --------------------------------------------------------------------------------------


def depth_picture(depth: np.ndarray, alpha: np.ndarray) -> PIL.Image.Image:
    """Depth ``(H, W)`` (0 = background) of a person covering ``alpha (H, W)`` as the command line's
    ``depth_vis`` picture: near is bright, the background black."""
    return PIL.Image.fromarray(depth_visualisation(depth, alpha)).convert("RGB")


def legend_html() -> str:
    """A colour legend of the six parts, as in the semantic pictures."""
    items = "".join(
        f'<span><span class="swatch" style="background: rgb{tuple(color)}"></span>{html.escape(name)}</span>' for name, color in zip(PARTS, PART_COLORS)
    )
    return f'<div class="part-legend" id="part-legend">{items}</div>'


@dataclass
class Pictures:
    """One render of one person: RGB, semantic, normal and depth pictures, and each part's share of the
    person's pixels."""

    image: PIL.Image.Image
    semantic: PIL.Image.Image
    normals: PIL.Image.Image
    depth: PIL.Image.Image
    coverage: dict[str, float]


# -- the app's events ------------------------------------------------------------------------------


class SemanticHumanSpace:
    """The Space's events over one pipeline. Each public method is one button of the page and one API
    endpoint; they take and return what the Gradio components hold (numbers, strings, file paths, PIL
    images) and raise ``gr.Error`` with a readable message for bad input.

    Parameters:
        model ([`LoadedModel`]): the pipeline and its description.
        files ([`BoundedTempFiles`], *optional*): where videos and meshes are written.
    """

    def __init__(self, model: LoadedModel, files: BoundedTempFiles | None = None):
        self.model = model
        self.pipe = model.pipeline
        self.files = files or BoundedTempFiles()

    # -- people as seeds ------------------------------------------------------------------------

    def person_latents(self, part_seeds: Sequence[int]) -> torch.Tensor:
        """``(1, K, z_dim)``: part ``k`` takes the latent ``sample_latents`` draws for part ``k`` from
        ``part_seeds[k]``, so six equal seeds give exactly the person of that seed."""
        by_seed = {seed: self.pipe.sample_latents(1, torch.Generator().manual_seed(seed)) for seed in set(part_seeds)}
        return torch.stack([by_seed[seed][0, k] for k, seed in enumerate(part_seeds)]).unsqueeze(0)

    @staticmethod
    def random_seed() -> int:
        """A fresh seed for the dice button."""
        return secrets.randbelow(MAX_SEED + 1)

    @staticmethod
    @_user_errors
    def set_seed(seed, locked_parts, *part_seeds) -> list[int]:
        """The person ``seed``: every part's seed becomes ``seed`` except the ``locked_parts``."""
        seed = _whole_number(seed, "seed", 0, MAX_SEED)
        seeds = check_seeds(part_seeds)
        locked = set(_check_parts(locked_parts or [], "locked parts", allow_empty=True))
        return [current if name in locked else seed for name, current in zip(PARTS, seeds)]

    @staticmethod
    @_user_errors
    def reroll_part(part, *part_seeds) -> list[int]:
        """A fresh random seed for ``part``; the other parts keep theirs."""
        part = check_choice(part, PARTS, "part to re-roll")
        seeds = check_seeds(part_seeds)
        index = PARTS.index(part)
        new = SemanticHumanSpace.random_seed()
        while new == seeds[index]:
            new = SemanticHumanSpace.random_seed()
        seeds[index] = new
        return seeds

    @staticmethod
    @_user_errors
    def try_on_seeds(seed_b, parts, *part_seeds) -> list[int]:
        """Person A's seeds with ``parts`` taken from person ``seed_b``: the person :meth:`try_on` renders."""
        seed_b = _whole_number(seed_b, "seed of person B", 0, MAX_SEED)
        taken = set(_check_parts(parts, "parts to take from person B"))
        return [seed_b if name in taken else seed for name, seed in zip(PARTS, check_seeds(part_seeds))]

    # -- rendering ------------------------------------------------------------------------------

    def _pose(self, pose, motion_file, motion_frame) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``body_pose (69,)`` and ``global_orient (3,) | None`` of a pose choice."""
        pose = check_choice(pose, [value for _, value in POSE_CHOICES], "pose")
        if pose != MOTION_POSE:
            return NAMED_POSES[pose], None
        if not motion_file:
            raise ValueError("the pose 'frame of an AMASS .npz' needs an uploaded AMASS .npz file (with `poses` and `trans`).")
        try:
            motion = load_amass(motion_file)
        except (ValueError, FileNotFoundError) as error:  # name the upload, not the server's copy of it
            raise ValueError(str(error).replace(str(motion_file), Path(motion_file).name)) from error
        if len(motion) == 0:
            raise ValueError(f"the uploaded motion {Path(motion_file).name!r} has no frames.")
        frame = _whole_number(motion_frame, "motion frame", 0, len(motion) - 1)
        return motion.body_pose[frame], motion.global_orient[frame]

    def _settings(self, truncation, resolution) -> tuple[float, str]:
        psi = check_number_in_range(truncation, "truncation", *TRUNCATION_RANGE)
        resolution = check_choice(resolution, [value for _, value in RESOLUTION_CHOICES], "resolution")
        return psi, resolution

    def _render(self, latents, pose, motion_file, motion_frame, view_angle, truncation, resolution) -> list[Pictures]:
        body_pose, global_orient = self._pose(pose, motion_file, motion_frame)
        angle = check_number_in_range(view_angle, "view angle", -MAX_VIEW_ANGLE_DEGREES, MAX_VIEW_ANGLE_DEGREES)
        psi, resolution = self._settings(truncation, resolution)
        out = self.pipe(
            latents=latents,
            body_pose=body_pose,
            global_orient=global_orient,
            view_angle=math.radians(angle),
            truncation_psi=psi,
            resolution=resolution,
            output_type="pil",
        )
        pictures = []
        for i in range(latents.shape[0]):
            masks = out.semantic_masks[i].reshape(NUM_PARTS, -1).sum(-1)
            coverage = masks / max(float(masks.sum()), np.finfo(np.float32).eps)
            pictures.append(
                Pictures(out.images[i], out.semantic_images[i], out.normals[i], depth_picture(out.depth[i], out.alpha[i]), dict(zip(PARTS, coverage.tolist())))
            )
        return pictures

    def command_line(self, part_seeds: Sequence[int], pose: str, view_angle: float, truncation: float, resolution: str) -> str | None:
        """The ``semantichuman-hd generate`` command that draws the same pictures, when there is one: six
        equal seeds and a named pose."""
        if len(set(part_seeds)) != 1 or pose == MOTION_POSE:
            return None
        model = f"{self.model.cli_arguments} " if self.model.cli_arguments else ""
        return (
            f"semantichuman-hd generate {model}--seed {part_seeds[0]} --num 1 --pose {pose} --view-angle {view_angle:g} "
            f"--truncation-psi {truncation:g} --resolution {resolution}"
        )

    def _describe(self, title: str, part_seeds: Sequence[int], pictures: Pictures, resolution: str, command: str | None = None) -> str:
        seeds = ", ".join(f"{name} {seed}" for name, seed in zip(PARTS, part_seeds))
        shares = ", ".join(f"{name} {share:.0%}" for name, share in pictures.coverage.items() if share >= 0.005) or "none (empty render)"
        size = pictures.image.size[0]
        lines = [f"**{title}** — {resolution} resolution ({size}×{size}), model: {self.model.name}.", f"Part seeds: {seeds}.", f"Visible parts: {shares}."]
        if command:
            lines.append(f"The same pictures on the command line: `{command}`")
        return "\n\n".join(lines)

    @_user_errors
    def render(
        self, body, tops, outerwear, bottoms, shoes, accessories, pose, motion_file, motion_frame, view_angle, truncation, resolution, progress=gr.Progress(track_tqdm=True)
    ):
        """Render person A from its six part seeds.

        Arguments: the six part seeds (``PARTS`` order), pose, motion file, motion frame, view angle
        (degrees), truncation, resolution. Returns the image, semantic picture, normal map, depth picture
        and a description.
        """
        seeds = check_seeds([body, tops, outerwear, bottoms, shoes, accessories])
        progress(0.0, desc="Rendering person A")
        (pictures,) = self._render(self.person_latents(seeds), pose, motion_file, motion_frame, view_angle, truncation, resolution)
        command = self.command_line(seeds, pose, view_angle, truncation, resolution)  # the inputs are checked by now
        return pictures.image, pictures.semantic, pictures.normals, pictures.depth, self._describe("Person A", seeds, pictures, resolution, command)

    @_user_errors
    def generate(
        self, seed, locked_parts, body, tops, outerwear, bottoms, shoes, accessories, pose, motion_file, motion_frame, view_angle, truncation, resolution, progress=gr.Progress(track_tqdm=True)
    ):
        """Set person A to ``seed`` (locked parts keep their seeds) and render it.

        Arguments: seed, locked parts, the six current part seeds, then :meth:`render`'s options.
        Returns the six new part seeds followed by :meth:`render`'s outputs.
        """
        seeds = self.set_seed(seed, locked_parts, body, tops, outerwear, bottoms, shoes, accessories)
        return (*seeds, *self.render(*seeds, pose, motion_file, motion_frame, view_angle, truncation, resolution, progress=progress))

    @_user_errors
    def try_on(
        self,
        body,
        tops,
        outerwear,
        bottoms,
        shoes,
        accessories,
        seed_b,
        parts,
        pose,
        motion_file,
        motion_frame,
        view_angle,
        truncation,
        resolution,
        progress=gr.Progress(track_tqdm=True),
    ):
        """Person A (six part seeds) wearing the ``parts`` of person ``seed_b``: virtual try-on with
        ``swap_parts``. Returns person B's image, the result's image and semantic picture, and a
        description."""
        seeds = check_seeds([body, tops, outerwear, bottoms, shoes, accessories])
        seed_b = _whole_number(seed_b, "seed of person B", 0, MAX_SEED)
        parts = _check_parts(parts, "parts to take from person B")
        latents_b = self.person_latents([seed_b] * NUM_PARTS)
        dressed_latents = self.pipe.swap_parts(self.person_latents(seeds), latents_b, parts)
        progress(0.0, desc="Rendering person B and the try-on")
        person_b, dressed = self._render(torch.cat([latents_b, dressed_latents]), pose, motion_file, motion_frame, view_angle, truncation, resolution)
        dressed_seeds = self.try_on_seeds(seed_b, parts, *seeds)
        title = f"Person A wearing person B's {', '.join(parts)}"
        return person_b.image, dressed.image, dressed.semantic, self._describe(title, dressed_seeds, dressed, resolution)

    @_user_errors
    def interpolate(
        self,
        body,
        tops,
        outerwear,
        bottoms,
        shoes,
        accessories,
        part,
        seed_b,
        weight,
        pose,
        motion_file,
        motion_frame,
        view_angle,
        truncation,
        resolution,
        progress=gr.Progress(track_tqdm=True),
    ):
        """Person A (six part seeds) with ``part`` moved toward person ``seed_b``'s by ``weight``
        (0 = A's, 1 = B's) with ``interpolate_part``. Returns the image, the semantic picture and a
        description."""
        seeds = check_seeds([body, tops, outerwear, bottoms, shoes, accessories])
        part = check_choice(part, PARTS, "part to interpolate")
        seed_b = _whole_number(seed_b, "seed of person B", 0, MAX_SEED)
        weight = check_number_in_range(weight, "interpolation weight", 0.0, 1.0)
        latents = self.pipe.interpolate_part(self.person_latents(seeds), self.person_latents([seed_b] * NUM_PARTS), part, [weight])
        progress(0.0, desc=f"Rendering the {part} at {weight:.0%} of the way")
        (pictures,) = self._render(latents, pose, motion_file, motion_frame, view_angle, truncation, resolution)
        title = f"The {part} {weight:.0%} of the way from person A's to seed {seed_b}'s"
        return pictures.image, pictures.semantic, self._describe(title, seeds, pictures, resolution)

    @_user_errors
    def turntable(
        self,
        body,
        tops,
        outerwear,
        bottoms,
        shoes,
        accessories,
        frames,
        video_format,
        pose,
        motion_file,
        motion_frame,
        view_angle,
        truncation,
        resolution,
        progress=gr.Progress(track_tqdm=True),
    ):
        """Person A (six part seeds) turning once from ``view_angle``, ``frames`` renders. Returns the
        GIF preview and the download (``video_format`` ``gif`` or ``mp4``). For an AMASS frame only its
        body pose is used: the turntable turns the person itself."""
        seeds = check_seeds([body, tops, outerwear, bottoms, shoes, accessories])
        frames = _whole_number(frames, "number of frames", *TURNTABLE_FRAMES_RANGE)
        video_format = check_choice(video_format, TURNTABLE_FORMATS, "video format")
        body_pose, _ = self._pose(pose, motion_file, motion_frame)
        angle = check_number_in_range(view_angle, "view angle", -MAX_VIEW_ANGLE_DEGREES, MAX_VIEW_ANGLE_DEGREES)
        psi, resolution = self._settings(truncation, resolution)
        progress(0.0, desc=f"Rendering {frames} frames")
        images = self.pipe.render_turntable(
            self.person_latents(seeds), num_frames=frames, resolution=resolution, truncation_psi=psi, body_pose=body_pose, start_angle=math.radians(angle)
        )
        stem = f"turntable_{_seeds_name(seeds)}"
        preview = save_video(images, self.files.new_path(f"{stem}.gif"), fps=TURNTABLE_FPS)
        download = preview if video_format == "gif" else save_video(images, self.files.new_path(f"{stem}.mp4"), fps=TURNTABLE_FPS)
        return str(preview), str(download)

    @_user_errors
    def export_mesh(
        self,
        body,
        tops,
        outerwear,
        bottoms,
        shoes,
        accessories,
        part,
        grid_resolution,
        mesh_format,
        posed,
        pose,
        motion_file,
        motion_frame,
        truncation,
        progress=gr.Progress(track_tqdm=True),
    ):
        """The mesh of one ``part`` of person A (six part seeds), or of the whole person (``"person"``),
        by marching cubes on a ``grid_resolution`` grid, as ``.glb`` or ``.obj``; in ``pose`` when
        ``posed`` (an AMASS frame's body pose, not its root orientation), else in the canonical pose.
        Returns the file for the 3D viewer and for download."""
        seeds = check_seeds([body, tops, outerwear, bottoms, shoes, accessories])
        part = check_choice(part, [value for _, value in MESH_PART_CHOICES], "mesh part")
        grid_resolution = _whole_number(grid_resolution, "mesh grid resolution", *MESH_GRID_RANGE)
        mesh_format = check_choice(mesh_format, MESH_FORMATS, "mesh format")
        psi = check_number_in_range(truncation, "truncation", *TRUNCATION_RANGE)
        body_pose = self._pose(pose, motion_file, motion_frame)[0] if posed else None
        progress(0.0, desc=f"Marching cubes on a {grid_resolution}-node grid")
        path = self.files.new_path(f"{part}_{_seeds_name(seeds)}{mesh_format}")
        result = self.pipe.export_mesh(
            self.person_latents(seeds),
            path,
            part=None if part == WHOLE_PERSON else part,
            grid_resolution=grid_resolution,
            truncation_psi=psi,
            body_pose=body_pose,
        )
        if not result.paths:
            raise ValueError(f"this person's {part} has no surface to mesh (a part can be empty); try another part or seed.")
        written = str(next(iter(result.paths.values())))
        return written, written


def _seeds_name(seeds: Sequence[int]) -> str:
    """A file-name fragment of the distinct seeds, e.g. ``seed7`` or ``seeds7-11``."""
    distinct = list(dict.fromkeys(seeds))
    return f"seed{distinct[0]}" if len(distinct) == 1 else "seeds" + "-".join(map(str, distinct))


def _check_parts(parts, argument: str, allow_empty: bool = False) -> list[str]:
    if isinstance(parts, str):
        parts = [parts]
    parts = list(parts or [])
    if not parts and not allow_empty:
        raise ValueError(f"`{argument}` must name at least one of {list(PARTS)}, got none.")
    for name in parts:
        check_choice(name, PARTS, argument)
    return parts


# -- the page --------------------------------------------------------------------------------------

INTRO = """# SemanticHuman-HD: semantic virtual try-on
Every person is made of six parts — **body, tops, outerwear, bottoms, shoes, accessories** — each from
its own generator and its own seed. Generate a person, re-roll or lock single parts, dress person A in
person B's clothes, move one garment between two people, turn the person around, and download a part as
a 3D mesh."""

RANDOM_WEIGHTS_WARNING = """⚠️ **This Space runs a randomly initialised `{name}` model** (`{preset_env}` is set).
Its people are robe-like silhouettes of the posed body in muddy colour, with one flat colour for all
parts; every control works, but nothing looks like clothing. Unset `{preset_env}` for the bundled demo
checkpoint, or set `{env}` to a trained pipeline folder or Hub repo id."""


def render_concurrency() -> int:
    """``$SEMANTICHUMAN_CONCURRENCY`` (default :data:`DEFAULT_CONCURRENCY`); ``ValueError`` unless it is a
    positive integer."""
    value = os.environ.get(CONCURRENCY_ENV, str(DEFAULT_CONCURRENCY)).strip()
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f"{CONCURRENCY_ENV} must be a positive integer, got {value!r}.")
    return int(value)


def build_demo(space: SemanticHumanSpace) -> gr.Blocks:
    """The page of ``space``, its events wired to :class:`SemanticHumanSpace`'s methods and its queue
    configured. Launch it with :func:`launch` (Gradio 6 takes the theme and style in ``launch``)."""
    low, high = TRUNCATION_RANGE
    default_psi = float(min(max(space.pipe.config.truncation_psi, low), high))
    with gr.Blocks(title="SemanticHuman-HD", delete_cache=(GRADIO_CACHE_LIFETIME_S, GRADIO_CACHE_LIFETIME_S)) as demo:
        gr.Markdown(INTRO)
        if space.model.random_weights:
            gr.Markdown(RANDOM_WEIGHTS_WARNING.format(name=space.model.name.removeprefix("preset "), env=MODEL_ENV, preset_env=PRESET_ENV), elem_id="random-weights-warning")
        else:
            gr.Markdown(f"Model: {space.model.name}." if space.model.name == BUNDLED_MODEL_NAME else f"Model: `{space.model.name}`.")

        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                with gr.Row(equal_height=True):
                    seed = gr.Number(DEFAULT_SEED_A, label="Seed (person A)", minimum=0, maximum=MAX_SEED, precision=0, scale=3, elem_id="seed")
                    dice = gr.Button("Roll the dice", scale=1, min_width=100, elem_id="dice")
                generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Accordion("Parts of person A", open=True):
                    part_seeds = []
                    for row in (PARTS[: NUM_PARTS // 2], PARTS[NUM_PARTS // 2 :]):
                        with gr.Row():
                            part_seeds += [
                                gr.Number(DEFAULT_SEED_A, label=name, minimum=0, maximum=MAX_SEED, precision=0, min_width=80, elem_id=f"seed-{name}") for name in row
                            ]
                    locked = gr.CheckboxGroup(list(PARTS), label="Locked parts (keep their seed when the seed changes)", elem_id="locked")
                    with gr.Row():
                        reroll_choice = gr.Dropdown(list(PARTS), value="tops", label="Part", scale=2)
                        reroll_button = gr.Button("Re-roll this part", scale=2)
                        render_button = gr.Button("Render these seeds", scale=2)
                with gr.Accordion("Pose and view", open=True):
                    pose = gr.Radio(POSE_CHOICES, value=DEFAULT_POSE, label="Pose")
                    with gr.Row():
                        motion_file = gr.File(label="AMASS .npz (for the motion-frame pose)", file_types=[".npz"], type="filepath", height=UPLOAD_HEIGHT)
                        motion_frame = gr.Number(0, label="Motion frame", minimum=0, precision=0)
                    gr.Examples(
                        [[str(MOTION_DATA_DIR / BUNDLED_MOTIONS[BUNDLED_MOTION]), BUNDLED_MOTION_FRAME, MOTION_POSE]],
                        [motion_file, motion_frame, pose],
                        label=f"A bundled motion ({BUNDLED_MOTION}), then Generate",
                    )
                    view_angle = gr.Slider(-MAX_VIEW_ANGLE_DEGREES, MAX_VIEW_ANGLE_DEGREES, value=0, step=VIEW_ANGLE_STEP, label="View angle (degrees, 0 = front)")
                    truncation = gr.Slider(low, high, value=default_psi, step=FRACTION_STEP, label="Truncation ψ (lower: closer to the average person)")
                    resolution = gr.Radio(RESOLUTION_CHOICES, value="low", label="Resolution")
            with gr.Column(scale=3):
                with gr.Row():
                    image = gr.Image(label="Image", format="png", elem_classes="person-picture", elem_id="image-output", height=PICTURE_HEIGHT)
                    semantic = gr.Image(label="Semantic parts", format="png", elem_classes="person-picture", elem_id="semantic-output", height=PICTURE_HEIGHT)
                with gr.Row():
                    normals = gr.Image(label="Normals", format="png", elem_classes="person-picture", elem_id="normals-output", height=PICTURE_HEIGHT)
                    depth = gr.Image(label="Depth (bright = near)", format="png", elem_classes="person-picture", elem_id="depth-output", height=PICTURE_HEIGHT)
                gr.HTML(legend_html())
                info = gr.Markdown(elem_id="info")

        with gr.Tabs():
            with gr.Tab("Try-on: A wears B's clothes"):
                with gr.Row(equal_height=True):
                    seed_b = gr.Number(DEFAULT_SEED_B, label="Seed of person B", minimum=0, maximum=MAX_SEED, precision=0)
                    try_on_parts = gr.CheckboxGroup(list(PARTS), value=list(DEFAULT_TRY_ON_PARTS), label="Parts taken from B")
                with gr.Row():
                    try_on_button = gr.Button("Dress A in B's parts", variant="primary", elem_id="try-on")
                    keep_button = gr.Button("Keep the result as person A")
                with gr.Row():
                    b_image = gr.Image(label="Person B", format="png", height=TAB_PICTURE_HEIGHT, elem_classes="person-picture")
                    tried_image = gr.Image(label="A wearing B's parts", format="png", height=TAB_PICTURE_HEIGHT, elem_classes="person-picture", elem_id="try-on-output")
                    tried_semantic = gr.Image(label="Semantic parts", format="png", height=TAB_PICTURE_HEIGHT, elem_classes="person-picture")
                try_on_info = gr.Markdown()
            with gr.Tab("Interpolate a part"):
                with gr.Row(equal_height=True):
                    lerp_part = gr.Dropdown(list(PARTS), value="tops", label="Part")
                    lerp_seed = gr.Number(DEFAULT_SEED_B, label="Toward the part of seed", minimum=0, maximum=MAX_SEED, precision=0)
                    lerp_weight = gr.Slider(0, 1, value=0.5, step=FRACTION_STEP, label="Weight (0 = A's part, 1 = the other seed's)")
                lerp_button = gr.Button("Interpolate", variant="primary")
                with gr.Row():
                    lerp_image = gr.Image(label="Image", format="png", height=TAB_PICTURE_HEIGHT, elem_classes="person-picture")
                    lerp_semantic = gr.Image(label="Semantic parts", format="png", height=TAB_PICTURE_HEIGHT, elem_classes="person-picture")
                lerp_info = gr.Markdown()
            with gr.Tab("Turntable"):
                with gr.Row(equal_height=True):
                    frames = gr.Slider(*TURNTABLE_FRAMES_RANGE, value=DEFAULT_TURNTABLE_FRAMES, step=1, label="Frames")
                    video_format = gr.Radio(list(TURNTABLE_FORMATS), value="gif", label="Download as")
                turntable_button = gr.Button("Turn around", variant="primary")
                with gr.Row():
                    turntable_preview = gr.Image(label="Turntable", type="filepath", height=PICTURE_HEIGHT, elem_classes="person-picture")
                    turntable_file = gr.File(label="Download")
            with gr.Tab("3D mesh"):
                with gr.Row(equal_height=True):
                    mesh_part = gr.Dropdown(MESH_PART_CHOICES, value=WHOLE_PERSON, label="Part")
                    mesh_grid = gr.Slider(*MESH_GRID_RANGE, value=DEFAULT_MESH_GRID, step=MESH_GRID_STEP, label="Grid resolution")
                    mesh_format = gr.Radio(list(MESH_FORMATS), value=".glb", label="Format")
                    mesh_posed = gr.Checkbox(True, label="In the chosen pose (else the canonical pose)")
                mesh_button = gr.Button("Make the mesh", variant="primary")
                with gr.Row():
                    mesh_view = gr.Model3D(label="Mesh", height=MESH_VIEWER_HEIGHT, clear_color=(1.0, 1.0, 1.0, 1.0))
                    mesh_file = gr.File(label="Download")

        gr.Markdown(
            "Seeds are the whole state: the same seeds, pose, view, truncation and resolution give the same "
            "pictures, here and with `semantichuman-hd`. The app's API (`gradio_client`) exposes every button."
        )

        scene = [pose, motion_file, motion_frame, view_angle, truncation, resolution]
        pictures = [image, semantic, normals, depth, info]
        render_options = dict(concurrency_id=RENDER_CONCURRENCY_ID)

        generate_inputs = [seed, locked, *part_seeds, *scene]
        generate_button.click(space.generate, generate_inputs, [*part_seeds, *pictures], api_name="generate", **render_options)
        seed.submit(space.generate, generate_inputs, [*part_seeds, *pictures], api_visibility="private", **render_options)
        dice.click(space.random_seed, None, seed, api_name="random_seed", queue=False).then(
            space.generate, generate_inputs, [*part_seeds, *pictures], api_visibility="private", **render_options
        )
        render_button.click(space.render, [*part_seeds, *scene], pictures, api_name="render", **render_options)
        reroll_button.click(space.reroll_part, [reroll_choice, *part_seeds], part_seeds, api_name="reroll_part", queue=False).then(
            space.render, [*part_seeds, *scene], pictures, api_visibility="private", **render_options
        )
        try_on_button.click(
            space.try_on, [*part_seeds, seed_b, try_on_parts, *scene], [b_image, tried_image, tried_semantic, try_on_info], api_name="try_on", **render_options
        )
        keep_button.click(space.try_on_seeds, [seed_b, try_on_parts, *part_seeds], part_seeds, api_name="try_on_seeds", queue=False).then(
            space.render, [*part_seeds, *scene], pictures, api_visibility="private", **render_options
        )
        lerp_inputs = [*part_seeds, lerp_part, lerp_seed, lerp_weight, *scene]
        lerp_button.click(space.interpolate, lerp_inputs, [lerp_image, lerp_semantic, lerp_info], api_name="interpolate", **render_options)
        lerp_weight.release(space.interpolate, lerp_inputs, [lerp_image, lerp_semantic, lerp_info], api_visibility="private", **render_options)
        turntable_button.click(
            space.turntable, [*part_seeds, frames, video_format, *scene], [turntable_preview, turntable_file], api_name="turntable", **render_options
        )
        mesh_button.click(
            space.export_mesh,
            [*part_seeds, mesh_part, mesh_grid, mesh_format, mesh_posed, pose, motion_file, motion_frame, truncation],
            [mesh_view, mesh_file],
            api_name="export_mesh",
            **render_options,
        )
        gr.Examples(EXAMPLES, [seed, pose, view_angle], label="Examples (pick one, then Generate)")

    demo.queue(default_concurrency_limit=render_concurrency(), max_size=QUEUE_MAX_SIZE)
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """``demo.launch`` with the Space's theme, style and upload limit (Gradio 6 takes them here)."""
    allowed = [*(kwargs.pop("allowed_paths", None) or []), str(MOTION_DATA_DIR)]  # the bundled motion example
    return demo.launch(theme=THEME, css=CSS, max_file_size=MAX_UPLOAD_SIZE, allowed_paths=allowed, **kwargs)


def main() -> None:
    reuse_freed_host_memory()
    space = SemanticHumanSpace(model_from_environment())
    space.pipe.deformer  # build the body model and its caches before the first visitor waits for them
    launch(build_demo(space))


if __name__ == "__main__":
    main()
