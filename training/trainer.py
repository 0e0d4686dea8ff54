"""The two-stage adversarial training loop with Accelerate (docs/method.md §6).

Per step (one batch per process), with one ``accelerator.accumulate(G, D)``:

1. **G**: render fakes of fresh latents posed and seen as the batch's labels; non-saturating loss of
   every discriminator (image, semantic, normal, face image, face normal; stage 2 without semantic)
   plus, in stage 2, the upsampling consistency loss; every ``reg_interval`` steps the eikonal and
   density-TV losses at canonical shell points (lazy: weighted by the interval).
2. **D**: logistic loss on the batch's real pictures and on the step's fakes (detached); every
   ``r1_interval`` steps R1 on the real pictures (lazy: γ/2 · interval).
3. EMA of the generator.

Discriminators see ``[-1, 1]`` pictures (white background) of a centred column window (the 2:1
portrait of the paper's people), blurred with a fading σ, optionally translated, conditioned on the
flat label vector (camera + SMPL). Every random draw of step ``s`` on rank ``r`` comes from a
generator seeded by ``(seed, s, r)`` and batches are drawn by step, so a resumed run repeats an
uninterrupted one exactly.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import PIL.Image
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration
from tqdm.auto import tqdm

from semantichuman_hd.data import SemanticHumanDataset
from semantichuman_hd.evaluation.reference import real_head_centres
from semantichuman_hd.generator import GeneratorOutput, SemanticHumanGenerator, rectangle_pixels
from semantichuman_hd.host_memory import reuse_freed_host_memory
from semantichuman_hd.hub import file_sha256
from semantichuman_hd.io import atomic_folder, fresh_partial_folder, partial_folder, swap_in
from semantichuman_hd.parts import NUM_PARTS, PARTS
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline, semantic_picture
from semantichuman_hd.rendering.compositor import normals_to_picture

from .augment import blur, blur_sigma, face_crops, translate_augment
from .warm_start import WarmStartResult, warm_start
from .config import TrainingConfig
from .discriminators import FACE_IMAGE, FACE_NORMAL, IMAGE, NORMAL, SEMANTIC, DiscriminatorSet, discriminator_inputs
from .losses import (
    coverage_floor_loss,
    density_tv_loss,
    discriminator_loss,
    eikonal_loss,
    ema_beta,
    generator_loss,
    lazy_adam_hyperparameters,
    r1_penalty,
    update_ema,
    upsampling_loss,
)

CHECKPOINT_PREFIX: str = "checkpoint-"
"""Checkpoint folders are ``OUTPUT_DIR/checkpoints/checkpoint-STEP``."""

CHECKPOINT_MANIFEST: str = "manifest.json"
"""Written last into each checkpoint: the step and the SHA-256 of every file (a checkpoint without it, or
whose files do not match it, is incomplete or corrupted and is refused)."""

PIPELINE_FOLDER: str = "pipeline"
"""The final ``save_pretrained`` folder (EMA weights) inside the output directory."""

METRICS_FILE: str = "metrics.jsonl"
"""Every logged step's values, one JSON object per line, appended (also when resuming)."""

SUMMARY_FILE: str = "train_summary.json"
"""Written at the end: steps, images seen, processes, and a digest of the trained weights on every
process (DDP keeps them identical; the digests show it)."""

SEED_STRIDE: int = 1_000_003
"""Step seeds are ``seed · SEED_STRIDE + step · NUM_STREAMS + stream`` (distinct for every step and rank)."""


class TrainingError(RuntimeError):
    """A training run that cannot go on (NaN loss, unusable checkpoint); the message says what to do."""


@dataclass
class TrainState:
    """Progress saved with every checkpoint."""

    step: int = 0
    """Optimiser steps taken."""
    images_seen: int = 0
    """Images shown, over all processes."""
    batches: int = 0
    """Batches drawn (``step × gradient_accumulation_steps`` at every checkpoint); it seeds the batch's draws."""

    def state_dict(self) -> dict:
        return {"step": self.step, "images_seen": self.images_seen, "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.images_seen, self.batches = int(state["step"]), int(state["images_seen"]), int(state["batches"])


BATCH_DRAW_RANK: int = 4095
"""Rank slot of :func:`step_generator` that draws every process's batch indices (above any real rank)."""

WARM_START_RANK: int = 4094
"""Rank slot of :func:`step_generator` for the warm start (the same on every process)."""


def cpu_threads_per_process(num_processes: int) -> int:
    """This machine's usable cores divided among its training processes (``LOCAL_WORLD_SIZE`` when a
    launcher sets it, else all ``num_processes``), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", num_processes))
    return max(1, cores // max(1, local))


def trained_beta(generator: SemanticHumanGenerator, stage: int) -> torch.nn.Parameter:
    """β of the stage being trained (stage 1: the local generators'; stage 2: the super-resolution's)."""
    return (generator.local_generators if stage == 1 else generator.super_resolution).beta


def step_generator(seed: int, step: int, rank: int, device="cpu") -> torch.Generator:
    """The random generator of ``step`` on process ``rank``."""
    return torch.Generator(device=device).manual_seed(seed * SEED_STRIDE + step * 4096 + rank)


# -- data -------------------------------------------------------------------------------------------


class TrainingData:
    """The dataset at the training size, optionally read once into memory, sampled by step.

    Raises:
        FileNotFoundError / ValueError: for a missing, empty or mismatched dataset (naming the folder).
    """

    def __init__(self, config: TrainingConfig, size: int, with_normals: bool):
        root = Path(config.data_dir)
        if not (root / "dataset.json").is_file():
            raise FileNotFoundError(f"`data_dir` {root} is not a dataset: {root / 'dataset.json'} is missing (see docs/dataset_format.md).")
        try:
            self.dataset = SemanticHumanDataset(root, image_size=size, mirror=config.mirror, with_normals=with_normals or False)
        except ValueError as error:
            if with_normals:
                raise ValueError(
                    f"`data_dir` {root}: {error} The normal discriminators need normal maps: write the dataset with "
                    "normals, or set use_normal_discriminators=false."
                ) from error
            raise
        if len(self.dataset) == 0:
            raise ValueError(f"`data_dir` {root} holds no samples.")
        native = max(self.dataset.native_size)
        if native < size:
            raise ValueError(
                f"`data_dir` {root} holds {native}-pixel pictures but stage training renders {size} pixels: "
                f"make the dataset at {size} pixels or more."
            )
        self.size = size
        self.with_normals = with_normals
        self.cache: Optional[dict[str, torch.Tensor]] = None
        if config.cache_dataset:
            self.cache = self._read_all()

    def _read(self, indices) -> dict[str, torch.Tensor]:
        """The items ``indices`` stacked: ``image``, ``segm``, ``labels`` (and ``normals``)."""
        items = [self.dataset[int(index)] for index in indices]
        read = {
            "image": torch.stack([item["image"] for item in items]),
            "segm": torch.stack([item["segm"] for item in items]),
            "labels": torch.stack([torch.cat([item["camera"], item["smpl"]]) for item in items]).float(),
        }
        if self.with_normals:
            read["normals"] = torch.stack([item["normals"] for item in items])
        return read

    def _read_all(self) -> dict[str, torch.Tensor]:
        """Every item, in compact dtypes (half-precision pictures, uint8 label maps)."""
        read = self._read(tqdm(range(len(self.dataset)), desc="reading the dataset", leave=False))
        compact = {"image": torch.float16, "segm": torch.uint8, "normals": torch.float16}
        return {key: value.to(compact.get(key, value.dtype)) for key, value in read.items()}

    def __len__(self) -> int:
        return len(self.dataset)

    def batch(self, indices: torch.Tensor, device) -> dict[str, torch.Tensor]:
        """Real pictures ``image (B, 3, H, W)`` in [-1, 1], ``masks (B, K, H, W)``, ``normals`` and ``labels (B, 111)``."""
        if self.cache is not None:
            picked = {key: values[indices] for key, values in self.cache.items()}
        else:
            picked = self._read(indices)
        segm = picked.pop("segm").long()
        picked["masks"] = torch.stack([segm == k + 1 for k in range(NUM_PARTS)], dim=1).float()
        return {key: value.float().to(device) for key, value in picked.items()}


# -- pictures the discriminators see ------------------------------------------------------------------


def fake_pictures(output: GeneratorOutput) -> dict[str, torch.Tensor]:
    """A render as discriminator pictures in [-1, 1] over white: image, semantic masks, normals."""
    normals = normals_to_picture(output.normals, output.alpha, dim=1) * 2 - 1
    return {"image": output.image * 2 - 1, "masks": output.masks, "normals": normals}


PATCH_POSITION_DIM: int = 2
"""Stage-2 patches: the discriminators' conditioning is the label vector and the patch's place (row, column)."""

FACE_BOX_MARGIN: int = 1
"""Pixels a stage-2 face box spares on each side of its face crop (the crop's bilinear taps stay inside)."""


def crop_rectangles(pictures: torch.Tensor, top_left: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, C, height, width)`` crops of ``pictures (B, C, H, W)`` at each picture's ``top_left (B, 2)`` (row, column)."""
    channels, picture_width = pictures.shape[1], pictures.shape[3]
    pixels = rectangle_pixels(top_left.to(pictures.device), height, width, picture_width)  # (B, height·width)
    return pictures.flatten(2).gather(2, pixels.unsqueeze(1).expand(-1, channels, -1)).unflatten(2, (height, width))


@dataclass
class Patches:
    """Stage-2 patch training (``patch_height`` × ``patch_width``): where each person's judged patch and
    face box lie in the HR window, in window pixels (row, column)."""

    top_left: torch.Tensor
    """``(B, 2)`` the patches' top-left pixels (multiples of the SR scale)."""
    height: int
    """Patch height (HR pixels)."""
    width: int
    """Patch width (HR pixels)."""
    window: tuple[int, int]
    """The HR window's (height, width)."""
    face_top_left: Optional[torch.Tensor] = None
    """``(B, 2)`` the face boxes' top-left pixels (None without face discriminators)."""
    face_side: int = 0
    """Side of the square face boxes."""

    @classmethod
    def draw(
        cls, batch: int, size: tuple[int, int], window: tuple[int, int], scale: int, rng: torch.Generator,
        centres: torch.Tensor | None = None, crop_size: float = 0.0,
    ) -> "Patches":
        """Random ``size`` (height, width) patches of ``window``, and face boxes holding the face crops of
        side ``crop_size`` around ``centres (B, 2)`` (``(x, y)`` window pixels; None: no face boxes)."""
        height, width = size
        rows = torch.randint(0, (window[0] - height) // scale + 1, (batch,), generator=rng) * scale
        cols = torch.randint(0, (window[1] - width) // scale + 1, (batch,), generator=rng) * scale
        patches = cls(torch.stack([rows, cols], 1), height, width, window)
        if centres is not None:
            # The box holds every bilinear tap of the crop, one pixel to spare on each side.
            side = min(math.ceil(crop_size) + 2 * FACE_BOX_MARGIN, *window)
            corner = (centres.detach().cpu().flip(1) - side / 2).floor().long()  # (row, column)
            corner[:, 0] = corner[:, 0].clamp(0, window[0] - side)
            corner[:, 1] = corner[:, 1].clamp(0, window[1] - side)
            patches.face_top_left, patches.face_side = corner, side
        return patches

    def pixels(self) -> torch.Tensor:
        """``(B, R)`` flat window pixels to render: the patch's, then the face box's."""
        pixels = [rectangle_pixels(self.top_left, self.height, self.width, self.window[1])]
        if self.face_top_left is not None:
            pixels.append(rectangle_pixels(self.face_top_left, self.face_side, self.face_side, self.window[1]))
        return torch.cat(pixels, 1)

    def split(self, strip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A render of :meth:`pixels`, ``(B, C, 1, R)``, as the patches ``(B, C, h, w)`` and the face boxes."""
        count = self.height * self.width
        patch = strip[..., 0, :count].unflatten(-1, (self.height, self.width))
        if self.face_top_left is None:
            return patch, None
        return patch, strip[..., 0, count:].unflatten(-1, (self.face_side, self.face_side))

    def position(self) -> torch.Tensor:
        """``(B, 2)`` the patches' places in [0, 1] (row, column; 0 where the patch spans the window), the
        discriminators' extra conditioning."""
        room = torch.tensor([max(self.window[0] - self.height, 1), max(self.window[1] - self.width, 1)], dtype=torch.float32)
        return self.top_left.float() / room

    def face_centres(self, centres: torch.Tensor) -> torch.Tensor:
        """``centres (B, 2)`` (x, y window pixels) in the face boxes' pixels."""
        return centres - self.face_top_left.flip(1).to(centres)


class Judge:
    """Builds every discriminator's input from full pictures: the column window, face crops around the
    projected head joint, blur and translation."""

    def __init__(self, config: TrainingConfig, generator: SemanticHumanGenerator, stage: int, size: int, columns: tuple[int, int]):
        self.config = config
        self.generator = generator
        self.stage = stage
        self.size = size
        self.columns = columns
        self.use_normals = config.use_normal_discriminators
        self.use_faces = config.use_face_discriminators

    def names(self) -> dict[str, tuple[int, int, int]]:
        height, width = self.size, self.columns[1] - self.columns[0]
        if self.config.patch_height:
            height, width = self.config.patch_height, self.config.patch_width
        inputs = discriminator_inputs(self.stage, height, width, self.config.face_size)
        if not self.use_normals:
            inputs = {k: v for k, v in inputs.items() if k not in (NORMAL, FACE_NORMAL)}
        if not self.use_faces:
            inputs = {k: v for k, v in inputs.items() if k not in (FACE_IMAGE, FACE_NORMAL)}
        return inputs

    @property
    def face_crop_size(self) -> float:
        """Side of the face crops in pixels of the judged resolution."""
        return self.config.face_crop_fraction * self.size

    def head_centres(self, labels: torch.Tensor) -> torch.Tensor | None:
        """``(B, 2)`` head-joint pixel positions of ``labels`` in the window (None without face discriminators)."""
        if not self.use_faces:
            return None
        centres = real_head_centres(self.generator.deformer.body_model, labels) * self.size
        centres[:, 0] -= self.columns[0]
        return centres

    def __call__(
        self, pictures: dict[str, torch.Tensor], centres: torch.Tensor | None, sigma: float, rng: torch.Generator, windowed: bool,
        face_pictures: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Discriminator inputs by name from ``pictures`` (full ``size²`` pictures, or already the
        window when ``windowed``), with face crops around ``centres`` (:meth:`head_centres`); with
        ``face_pictures`` (stage-2 patches) the face crops come from those, around ``centres`` in their
        pixels, and are not translated."""
        c0, c1 = self.columns
        crop = (lambda x: x) if windowed else (lambda x: x[..., c0:c1])
        inputs = {IMAGE: crop(pictures["image"])}
        if self.stage == 1:
            inputs[SEMANTIC] = crop(pictures["masks"]) * 2 - 1
        if self.use_normals:
            inputs[NORMAL] = crop(pictures["normals"])
        shifts = None
        if self.config.augment_probability > 0:
            inputs, shifts = translate_augment(
                inputs, self.config.augment_max_shift, generator=rng, probability=self.config.augment_probability,
                fill={IMAGE: 1.0, SEMANTIC: -1.0, NORMAL: 1.0},
            )
        if self.use_faces:
            source = {FACE_IMAGE: inputs[IMAGE], FACE_NORMAL: inputs.get(NORMAL)}
            if face_pictures is not None:
                source = {FACE_IMAGE: face_pictures["image"], FACE_NORMAL: face_pictures.get("normals")}
            elif shifts is not None:
                centres = centres + shifts.to(centres)
            inputs[FACE_IMAGE] = face_crops(source[FACE_IMAGE], centres, self.face_crop_size, self.config.face_size)
            if self.use_normals:
                inputs[FACE_NORMAL] = face_crops(source[FACE_NORMAL], centres, self.face_crop_size, self.config.face_size)
        if sigma > 0:
            inputs = {name: blur(value, sigma) for name, value in inputs.items()}
        return inputs


# -- checkpoints --------------------------------------------------------------------------------------


def parameter_digest(*modules: torch.nn.Module) -> str:
    """SHA-256 of the modules' parameters, in order (equal weights give equal digests). Buffers are left
    out: the mapper's tracked average code follows each process's own batches between DDP's broadcasts."""
    digest = hashlib.sha256()
    for module in modules:
        for name, tensor in module.named_parameters():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints (with a manifest) in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        suffix = path.name[len(CHECKPOINT_PREFIX) :]
        if path.is_dir() and path.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() and (path / CHECKPOINT_MANIFEST).is_file():
            found.append((int(suffix), path))
    return [path for _, path in sorted(found)]


def verify_checkpoint(path: Path) -> int:
    """The step of checkpoint ``path``; raise :class:`TrainingError` if it is incomplete or corrupted."""
    manifest_path = path / CHECKPOINT_MANIFEST
    if not manifest_path.is_file():
        raise TrainingError(f"checkpoint {path} is incomplete: {CHECKPOINT_MANIFEST} is missing (the save was interrupted).")
    try:
        manifest = json.loads(manifest_path.read_text())
        files, step = manifest["files"], int(manifest["step"])
    except (ValueError, KeyError, TypeError) as error:
        raise TrainingError(f"checkpoint {path}: {manifest_path} is unreadable ({error}).") from error
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise TrainingError(f"checkpoint {path} is incomplete: {name} is missing.")
        if file_sha256(file) != expected:
            raise TrainingError(f"checkpoint {path} is corrupted: {name} does not match the SHA-256 recorded when it was saved.")
    return step


# -- the trainer --------------------------------------------------------------------------------------


class Trainer:
    """Builds models, data, optimisers and the accelerator from a :class:`TrainingConfig` and trains.

    Parameters:
        config: the validated configuration.
        accelerator: optional; built from the config by default.
    """

    def __init__(self, config: TrainingConfig, accelerator: Accelerator | None = None):
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.stage = config.stage
        self.accelerator = accelerator or Accelerator(
            # Without a GPU, processes started by `accelerate launch --multi_gpu` form a gloo group only
            # when the accelerator is told it runs on the CPU (otherwise each trains alone).
            cpu=not torch.cuda.is_available(),
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            log_with=None if config.logger == "none" else config.logger,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.device = self.accelerator.device
        if self.device.type == "cpu":
            torch.set_num_threads(config.cpu_threads or cpu_threads_per_process(self.accelerator.num_processes))
            reuse_freed_host_memory()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.state = TrainState()
        self._build()

    # -- construction -------------------------------------------------------------------------------

    def _load_pipeline(self) -> SemanticHumanPipeline:
        config = self.config
        if config.stage == 2:
            folder = Path(config.stage1_pipeline)
            if not (folder / "model_index.json").is_file():
                raise FileNotFoundError(
                    f"`stage1_pipeline` {folder} is not a pipeline folder (no model_index.json): train stage 1 first "
                    "and pass its OUTPUT_DIR/pipeline."
                )
            pipe = SemanticHumanPipeline.from_pretrained(folder)
            pipe.super_resolution.init_from_local_generators(pipe.local_generators)
            return pipe
        if config.init_pipeline:
            return SemanticHumanPipeline.from_pretrained(config.init_pipeline)
        return SemanticHumanPipeline.from_preset(config.preset, seed=config.seed)

    def _build(self) -> None:
        config = self.config
        pipe = self._load_pipeline()
        # The ablation switches are part of the model (the exported pipeline keeps them); the render
        # shortcuts below are training's only (the exported pipeline renders with its own samples).
        pipe.register_to_config(selection_mode=config.selection_mode, depth_aggregation=config.depth_aggregation)
        self.pipeline_config = {key: pipe.config[key] for key in (
            "low_resolution", "high_resolution", "num_stratified", "num_importance", "truncation_psi",
            "selection_mode", "depth_aggregation", "composition",
        )}
        generator = pipe.generator_model
        shortcuts = {
            "coarse_gradients": config.coarse_gradients, "skip_empty_rays": config.skip_empty_rays,
            "normal_min_weight": config.normal_min_weight,
        }
        if config.num_root_inits:
            shortcuts["num_root_inits"] = config.num_root_inits
        if config.num_stratified:
            shortcuts["num_stratified"] = config.num_stratified
        if config.num_importance >= 0:
            shortcuts["num_importance"] = config.num_importance
        if config.chunk_size:
            shortcuts["chunk_size"] = config.chunk_size
        generator.settings = dataclasses.replace(generator.settings, **shortcuts)
        settings = generator.settings
        low = settings.low_resolution
        crop = config.crop_width or low // 2
        if crop > low:
            raise ValueError(f"`crop_width` ({crop}) must be at most the LR size {low}.")
        self.columns = ((low - crop) // 2, (low + crop) // 2)
        self.size = low if self.stage == 1 else settings.high_resolution
        scale = 1 if self.stage == 1 else settings.scale
        judge_columns = (self.columns[0] * scale, self.columns[1] * scale)

        # Trainable parts: stage 1 everything but the super-resolution module; stage 2 only that.
        trainable = [generator.mapper, generator.local_generators] if self.stage == 1 else [generator.super_resolution]
        generator.requires_grad_(False)
        for module in trainable:
            module.requires_grad_(True)
        self.ema = SemanticHumanGenerator(
            copy.deepcopy(generator.mapper), copy.deepcopy(generator.local_generators), copy.deepcopy(generator.super_resolution),
            generator.deformer, settings,
        ).requires_grad_(False).eval()

        self.window = (self.size, judge_columns[1] - judge_columns[0])
        self.scale = scale
        if config.patch_height and (config.patch_height > self.window[0] or config.patch_width > self.window[1] or config.patch_width % scale or config.patch_height % scale):
            raise ValueError(
                f"`patch_height`×`patch_width` ({config.patch_height}×{config.patch_width}) must fit the {self.window[0]}×{self.window[1]} "
                f"HR window and be multiples of the SR scale {scale}."
            )
        self.data = TrainingData(config, self.size, with_normals=config.use_normal_discriminators)
        self.judge = Judge(config, generator, self.stage, self.size, judge_columns)
        c_dim = self.data.dataset.labels.shape[1] + (PATCH_POSITION_DIM if config.patch_height else 0)
        with torch.random.fork_rng(devices=[]):  # the discriminators' initial weights follow `seed` too
            torch.manual_seed(config.seed)
            discriminators = DiscriminatorSet(
                self.judge.names(), c_dim=c_dim, channel_base=config.d_channel_base, channel_max=config.d_channel_max
            )

        g_lr, g_betas = lazy_adam_hyperparameters(config.g_lr, config.adam_betas, config.reg_interval or None)
        d_lr, d_betas = lazy_adam_hyperparameters(config.d_lr, config.adam_betas, config.r1_interval or None)
        # β (the trained stage's SDF → density sharpness) has its own learning rate (`beta_lr`).
        beta = trained_beta(generator, self.stage)
        g_params = [p for p in generator.parameters() if p.requires_grad and p is not beta]
        beta_lr, _ = lazy_adam_hyperparameters(
            config.g_lr if config.beta_lr is None else config.beta_lr, config.adam_betas, config.reg_interval or None
        )
        g_optimizer = torch.optim.Adam(
            [{"params": g_params}, {"params": [beta], "lr": beta_lr}], lr=g_lr, betas=g_betas, eps=config.adam_eps
        )
        d_optimizer = torch.optim.Adam(discriminators.parameters(), lr=d_lr, betas=d_betas, eps=config.adam_eps)
        generator.deformer.to(self.device)
        generator.deformer.compile_solver(config.compile_solver)
        self.ema.to(self.device)
        self.G, self.D, self.g_optimizer, self.d_optimizer = self.accelerator.prepare(generator, discriminators, g_optimizer, d_optimizer)
        self.accelerator.register_for_checkpointing(self.ema, self.state)
        self.pipe = pipe

    @property
    def G_plain(self) -> SemanticHumanGenerator:
        return self.accelerator.unwrap_model(self.G)

    @property
    def D_plain(self) -> DiscriminatorSet:
        return self.accelerator.unwrap_model(self.D)

    @property
    def trained_beta(self) -> torch.nn.Parameter:
        """β of the stage being trained (:func:`trained_beta`)."""
        return trained_beta(self.G_plain, self.stage)

    @property
    def checkpoint_dir(self) -> Path:
        return self.output_dir / "checkpoints"

    # -- one step -----------------------------------------------------------------------------------

    def batch_indices(self, batch_number: int) -> torch.Tensor:
        """This process's sample indices of batch ``batch_number`` (drawn for all processes at once, then sliced)."""
        accelerator, batch = self.accelerator, self.config.batch_size
        rng = step_generator(self.config.seed, batch_number, rank=BATCH_DRAW_RANK)
        everyone = torch.randint(0, len(self.data), (batch * accelerator.num_processes,), generator=rng)
        return everyone[accelerator.process_index * batch : (accelerator.process_index + 1) * batch]

    def _render(self, generator, z, labels, rng, create_graph, pixels=None, all_hr_parts=False):
        return generator(
            z, labels, stage=self.stage, update_w_avg=self.stage == 1 and generator is self.G,
            columns=self.columns, ray_bounds=self.config.ray_bounds, perturb=True, noise_mode="random",
            generator=rng, create_graph=create_graph, pixels=pixels, all_hr_parts=all_hr_parts,
        )

    def _check_finite(self, name: str, value: torch.Tensor) -> None:
        if not torch.isfinite(value).all():
            latest = list_checkpoints(self.checkpoint_dir)
            where = f"the last checkpoint {latest[-1]} is intact" if latest else "no checkpoint was written yet"
            raise TrainingError(
                f"the {name} loss is {value.item()} at step {self.state.step}; nothing was updated and {where}. "
                "Lower g_lr / d_lr, raise r1_gamma, or resume from the checkpoint."
            )

    def train_step(self) -> dict[str, float]:
        """One generator step and one discriminator step on this step's batch; returns the logged values."""
        config, accelerator, step = self.config, self.accelerator, self.state.step
        rng = step_generator(config.seed, self.state.batches, accelerator.process_index)
        real = self.data.batch(self.batch_indices(self.state.batches), self.device)
        labels = real["labels"]
        batch = labels.shape[0]
        c0, c1 = self.judge.columns
        real_masks = real["masks"][..., c0:c1]  # the judged window, as the generated masks
        z = torch.randn(batch, 1, self.G_plain.mapper.config.z_dim, generator=rng).expand(-1, NUM_PARTS, -1).to(self.device)
        sigma = blur_sigma(self.state.images_seen, config.blur_fade_kimg, config.blur_sigma) if config.blur_fade_kimg > 0 else 0.0
        logs: dict[str, float] = {}
        centres = self.judge.head_centres(labels)
        patches, condition = None, labels
        if config.patch_height:  # stage 2: render and judge one patch of each window (and its face box)
            patches = Patches.draw(
                batch, (config.patch_height, config.patch_width), self.window, self.scale, rng, centres, self.judge.face_crop_size
            )
            condition = torch.cat([labels, patches.position().to(labels)], 1)
            real_masks = crop_rectangles(real_masks, patches.top_left, patches.height, patches.width)

        reg_step = bool(config.reg_interval and step % config.reg_interval == 0 and (config.eikonal_weight or config.density_tv_weight))
        with accelerator.accumulate(self.G, self.D):
            # Generator: adversarial (+ upsampling) loss, lazily regularised.
            self.D_plain.requires_grad_(False)
            fake = self._render(
                self.G, z, labels, rng, create_graph=config.use_normal_discriminators,
                pixels=None if patches is None else patches.pixels(),
                all_hr_parts=reg_step and self.stage == 2,  # the regularisers read every part's HR planes
            )
            pictures, face_pictures, fake_centres = fake_pictures(fake), None, centres
            if patches is not None:
                split = {name: patches.split(value) for name, value in pictures.items()}
                pictures = {name: value[0] for name, value in split.items()}
                if centres is not None:
                    face_pictures = {name: value[1] for name, value in split.items()}
                    fake_centres = patches.face_centres(centres)
            fake_inputs = self.judge(pictures, fake_centres, sigma, rng, windowed=True, face_pictures=face_pictures)
            g_adversarial = generator_loss(self.D_plain(fake_inputs, condition))
            g_loss = g_adversarial
            logs["loss/g_adversarial"] = g_adversarial.item()
            if self.stage == 2 and config.upsampling_loss:
                low = fake_pictures(fake.low)
                if patches is not None:  # the LR pixels under each patch
                    scale = self.scale
                    low = {name: crop_rectangles(value, patches.top_left // scale, patches.height // scale, patches.width // scale) for name, value in low.items()}
                keys = {"image": "image", "semantic": "masks", "normal": "normals"}
                up = upsampling_loss({k: low[v] for k, v in keys.items()}, {k: pictures[v] for k, v in keys.items()}, config.upsampling_loss_weight)
                g_loss = g_loss + up
                logs["loss/upsampling"] = up.item()
            fake_masks = pictures["masks"]
            if config.coverage_floor > 0 and config.coverage_floor_weight > 0:
                floor = coverage_floor_loss(fake_masks, real_masks, config.coverage_floor)
                g_loss = g_loss + config.coverage_floor_weight * floor
                logs["loss/coverage_floor"] = floor.item()
            if reg_step:
                planes = fake.triplanes.planes if self.stage == 1 else fake.hr_planes
                points = self.G_plain.shell_points(batch, config.reg_points, generator=rng).to(self.device)
                regs = self.G_plain.field_regularizers(planes, points, stage=self.stage, generator=rng)
                eikonal = eikonal_loss(regs.sdf_gradients)
                tv = density_tv_loss(regs.sdf, regs.sdf_jittered)
                g_loss = g_loss + config.reg_interval * (config.eikonal_weight * eikonal + config.density_tv_weight * tv)
                logs["loss/eikonal"], logs["loss/density_tv"] = eikonal.item(), tv.item()
            self._check_finite("generator", g_loss)
            accelerator.backward(g_loss)
            self.g_optimizer.step()
            self.g_optimizer.zero_grad(set_to_none=True)
            if config.beta_min > 0:
                with torch.no_grad():
                    self.trained_beta.clamp_(min=config.beta_min)
            self.D_plain.requires_grad_(True)

            # Discriminator: logistic loss on reals and the step's fakes, lazily R1-regularised.
            r1_step = config.r1_interval and step % config.r1_interval == 0 and config.r1_gamma > 0
            real_pictures = {"image": real["image"], "masks": real["masks"], "normals": real.get("normals", real["image"])}
            if patches is None:
                real_inputs = self.judge(real_pictures, centres, sigma, rng, windowed=False)
            else:  # the same patches of the real windows; faces from the whole windows
                windows = {name: value[..., c0:c1] for name, value in real_pictures.items()}
                real_patches = {name: crop_rectangles(value, patches.top_left, patches.height, patches.width) for name, value in windows.items()}
                real_inputs = self.judge(real_patches, centres, sigma, rng, windowed=True, face_pictures=windows)
            if r1_step:  # each discriminator's R1 is taken on its own input
                real_inputs = {name: value.detach().requires_grad_(True) for name, value in real_inputs.items()}
            real_logits = self.D(real_inputs, condition)
            fake_logits = self.D_plain({name: value.detach() for name, value in fake_inputs.items()}, condition)
            d_loss = discriminator_loss(real_logits, fake_logits)
            logs["loss/d"] = d_loss.item()
            if r1_step:
                r1 = r1_penalty(real_logits, real_inputs)  # Σ_d ‖∇ D_d(x_d)‖²: the inputs are separate leaves
                d_loss = d_loss + r1 * (config.r1_gamma / 2) * config.r1_interval
                logs["loss/r1"] = r1.item()
            self._check_finite("discriminator", d_loss)
            accelerator.backward(d_loss)
            self.d_optimizer.step()
            self.d_optimizer.zero_grad(set_to_none=True)

        # Each part's share of the judged window (mean mask weight), generated and real: a part the
        # generator drops or lets spread over the body shows at once.
        for name, masks in (("fake", fake_masks), ("real", real_masks)):
            for part, share in zip(PARTS, masks.detach().mean(dim=(0, 2, 3)).tolist()):
                logs[f"coverage/{name}/{part}"] = share
        logs["logits/real"] = torch.stack([v.mean() for v in real_logits.values()]).mean().item()
        logs["logits/fake"] = torch.stack([v.mean() for v in fake_logits.values()]).mean().item()
        logs["beta"] = float(self.trained_beta.detach().abs())
        logs["blur_sigma"] = sigma
        images = batch * accelerator.num_processes
        self.state.images_seen += images
        self.state.batches += 1
        if accelerator.sync_gradients:
            beta = ema_beta(images * config.gradient_accumulation_steps, config.ema_kimg, config.ema_rampup, self.state.images_seen)
            update_ema(self.ema, self.G_plain, beta)
            self.state.step += 1
        return logs

    # -- checkpoints, samples, export ---------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """``save_state`` into a temporary folder, a manifest last, then an atomic rename; old ones pruned."""
        accelerator = self.accelerator
        final = self.checkpoint_dir / f"{CHECKPOINT_PREFIX}{self.state.step}"
        partial = partial_folder(final)
        if accelerator.is_main_process:
            fresh_partial_folder(final)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            files = {p.relative_to(partial).as_posix(): file_sha256(p) for p in sorted(partial.rglob("*")) if p.is_file()}
            manifest = {"step": self.state.step, "images_seen": self.state.images_seen, "files": files}
            (partial / CHECKPOINT_MANIFEST).write_text(json.dumps(manifest, indent=1))
            swap_in(partial, final)
            limit = self.config.checkpoints_total_limit
            if limit is not None:
                for old in list_checkpoints(self.checkpoint_dir)[:-limit]:
                    shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return final

    def resume(self, checkpoint: str) -> bool:
        """Load ``checkpoint`` (a folder, or ``"latest"``: the newest complete one, if any). Returns
        whether a checkpoint was loaded."""
        if checkpoint == "latest":
            found = list_checkpoints(self.checkpoint_dir)
            if not found:
                return False
            path = found[-1]
        else:
            path = Path(checkpoint)
            if not path.is_dir():
                raise FileNotFoundError(f"--resume_from_checkpoint {path}: no such checkpoint folder.")
        step = verify_checkpoint(path)
        try:
            self.accelerator.load_state(str(path))
        except Exception as error:  # a checkpoint of another configuration
            raise TrainingError(f"checkpoint {path} does not fit this configuration: {error}") from error
        if self.state.step != step:
            raise TrainingError(f"checkpoint {path} holds step {self.state.step} but its manifest says {step}.")
        return True

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 rows of people from the EMA generator: image | semantics | normals, full frame."""
        config = self.config
        count = min(config.num_samples, len(self.data))
        rng = torch.Generator().manual_seed(config.seed)
        z = torch.randn(count, 1, self.ema.mapper.config.z_dim, generator=rng).expand(-1, NUM_PARTS, -1).to(self.device)
        labels = self.data.batch(torch.arange(count), self.device)["labels"]
        output = self.ema(z, labels, stage=self.stage, ray_bounds=self.config.ray_bounds)
        normals = normals_to_picture(output.normals, output.alpha, dim=1)
        rows = torch.cat([output.image.clamp(0, 1), semantic_picture(output.masks), normals.clamp(0, 1)], dim=3)  # (B, 3, H, 3W)
        grid = torch.cat(list(rows), dim=1)  # (3, B·H, 3W)
        return (grid.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)

    def log_samples(self) -> None:
        if not self.accelerator.is_main_process:
            return
        grid = self.sample_grid()
        folder = self.output_dir / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(grid).save(folder / f"step-{self.state.step:07d}.png")
        if self.config.logger == "tensorboard":
            tracker = self.accelerator.get_tracker("tensorboard", unwrap=True)
            tracker.add_image("samples", grid, self.state.step, dataformats="HWC")

    def export(self) -> Path:
        """``save_pretrained`` of the EMA generator into ``OUTPUT_DIR/pipeline`` (written aside, then swapped in).

        Stage 1 does not train the super-resolution module, so a stage-1 folder's is re-initialised from
        the trained low-resolution generators (as stage 2 starts, docs/method.md §5): its HR tri-planes
        are the LR ones upsampled and ``resolution="high"`` renders the stage-1 person at the high
        resolution instead of decoding with the untrained decoders of step 0.
        """
        accelerator = self.accelerator
        target = self.output_dir / PIPELINE_FOLDER
        if accelerator.is_main_process:
            ema = self.ema
            pipe = SemanticHumanPipeline(
                mapper=copy.deepcopy(ema.mapper).requires_grad_(True).cpu(),
                local_generators=copy.deepcopy(ema.local_generators).requires_grad_(True).cpu(),
                super_resolution=copy.deepcopy(ema.super_resolution).requires_grad_(True).cpu(),
                **self.pipeline_config,
            )
            if self.stage == 1:
                with torch.no_grad():
                    pipe.super_resolution.init_from_local_generators(pipe.local_generators)
            with atomic_folder(target) as partial:
                pipe.save_pretrained(partial)
            if self.config.push_to_hub:
                pipe.push_to_hub(self.config.hub_model_id)
        accelerator.wait_for_everyone()
        return target

    # -- the loop -----------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | None = None) -> Path:
        """Train to ``max_steps``, checkpointing, logging and sampling on the way; returns the pipeline folder."""
        config, accelerator = self.config, self.accelerator
        if resume_from_checkpoint:
            self.resume(resume_from_checkpoint)
        if config.logger != "none":
            hparams = {key: (str(value) if isinstance(value, (list, tuple)) or value is None else value) for key, value in config.to_dict().items()}
            accelerator.init_trackers("semantichuman-hd", config=hparams)
        if self.stage == 1 and self.state.step == 0 and config.warm_start_steps:
            self.warm_start()
        progress = tqdm(
            total=config.max_steps, initial=self.state.step, desc=f"stage {self.stage}", disable=not accelerator.is_main_process
        )
        window_start, window_images, window_logs = time.perf_counter(), 0, {}
        while self.state.step < config.max_steps:
            for key, value in self.train_step().items():
                window_logs.setdefault(key, []).append(value)
            window_images += config.batch_size * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue  # one optimiser step is `gradient_accumulation_steps` batches
            step = self.state.step
            progress.update(1)
            if step % config.log_every == 0 or step == config.max_steps:
                # Means over the steps since the last log (lazy terms over the steps that computed them).
                logs = {key: sum(values) / len(values) for key, values in window_logs.items()}
                elapsed = time.perf_counter() - window_start
                logs["images_per_second"] = window_images / max(elapsed, 1e-9)
                logs["images_seen"] = self.state.images_seen
                accelerator.log(logs, step=step)
                self.append_metrics({"step": step, **logs})
                progress.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in logs.items() if k.startswith("loss/")})
                window_start, window_images, window_logs = time.perf_counter(), 0, {}
            if config.sample_every and step % config.sample_every == 0:
                self.log_samples()
            if config.checkpointing_steps and step % config.checkpointing_steps == 0 and step < config.max_steps:
                self.save_checkpoint()
        progress.close()
        self.save_checkpoint()
        self.log_samples()
        folder = self.export()
        self.write_summary()
        accelerator.end_training()
        return folder

    def warm_start(self) -> WarmStartResult:
        """Place every part on its body region (``training/warm_start.py``) before the first step; the
        EMA starts from the result. Every process runs the same seeded fit, so ranks stay identical."""
        config, accelerator = self.config, self.accelerator
        rng = step_generator(config.seed, 0, rank=WARM_START_RANK)
        with accelerator.no_sync(self.G):
            result = warm_start(self.G_plain, config.warm_start_steps, config.batch_size, config.reg_points, config.warm_start_lr, rng, self.device)
        update_ema(self.ema, self.G_plain, 0.0)
        logs = {"warm_start/first_loss": result.first_loss, "warm_start/last_loss": result.last_loss}
        accelerator.log(logs, step=0)
        self.append_metrics({"step": 0, "warm_start_steps": result.steps, **logs})
        return result

    def append_metrics(self, record: dict) -> None:
        """One JSON line in ``OUTPUT_DIR/metrics.jsonl`` (main process only)."""
        if self.accelerator.is_main_process:
            with open(self.output_dir / METRICS_FILE, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def write_summary(self) -> None:
        """:data:`SUMMARY_FILE`: the digests of every process's generator and discriminator weights."""
        from accelerate.utils import gather_object

        digests = gather_object([parameter_digest(self.G_plain, self.D_plain)])
        if self.accelerator.is_main_process:
            summary = {
                "stage": self.stage,
                "step": self.state.step,
                "images_seen": self.state.images_seen,
                "num_processes": self.accelerator.num_processes,
                "process_digests": digests,
            }
            (self.output_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1))
