"""Training configuration: one YAML file per preset and stage (``training/configs/``), overridden by
``key=value`` arguments on the command line. Every key is a field of :class:`TrainingConfig`; unknown
keys and bad values fail before any work starts (docs/method.md §6)."""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from semantichuman_hd.checks import check_choice, check_number_in_range
from semantichuman_hd.evaluation.pictures import FACE_CROP_FRACTION
from semantichuman_hd.generator import RAY_BOUNDS
from semantichuman_hd.presets import PRESETS
from semantichuman_hd.rendering.guided_sampling import SELECTION_MODES

LOGGERS: tuple[str, ...] = ("tensorboard", "wandb", "none")
"""``logger`` values."""


@dataclass
class TrainingConfig:
    """Everything a training run needs; the YAML files under ``training/configs/`` set these fields."""

    # -- what and where --------------------------------------------------------------------------
    stage: int = 1
    """1: mapper, local generators, LR decoders and β; 2: super-resolution only (stage 1 frozen)."""
    preset: str = "demo"
    """Model size and render settings (``tiny``, ``demo``, ``paper``) of a fresh stage-1 model."""
    data_dir: str = ""
    """Dataset folder (``dataset.json``, ``images/``, ``segm/``, ``normals/``; docs/dataset_format.md)."""
    output_dir: str = "runs/train"
    """Where checkpoints, logs, samples and the final pipeline folder go."""
    stage1_pipeline: Optional[str] = None
    """Stage 2: the stage-1 pipeline folder (``OUTPUT_DIR/pipeline`` of a stage-1 run). Required there."""
    init_pipeline: Optional[str] = None
    """Stage 1: start from this pipeline folder's weights instead of a random ``preset``."""
    seed: int = 0
    """Seeds the model initialisation, the data order and every random draw of the loop."""

    # -- schedule --------------------------------------------------------------------------------
    max_steps: int = 1000
    """Optimisation steps (each a generator and a discriminator step on one batch)."""
    batch_size: int = 8
    """Images per step and process."""
    gradient_accumulation_steps: int = 1
    """Batches whose gradients are summed before each optimiser step."""
    g_lr: float = 0.0025
    """Generator learning rate (EG3D)."""
    d_lr: float = 0.002
    """Discriminator learning rate (EG3D)."""
    adam_betas: tuple = (0.0, 0.99)
    """Adam's β1, β2 (before the lazy-regularisation correction)."""
    adam_eps: float = 1e-8
    """Adam's ε."""

    # -- rendering -------------------------------------------------------------------------------
    crop_width: int = 0
    """Width of the rendered and judged window in LR pixels, centred (0: half the LR size, the 2:1
    portrait of the paper's people). Must be a power of 2."""
    num_stratified: int = 0
    """Stratified samples per ray of the training render (0: the pipeline's; the exported pipeline keeps
    its own)."""
    num_importance: int = -1
    """Importance samples per ray of the training render (-1: the pipeline's)."""
    num_root_inits: int = 0
    """Inverse-skinning solver starts per sample (0: the deformer's default, 3); fewer is faster."""
    chunk_size: int = 0
    """Rays rendered at once over the batch (0: the renderer's default, 16384). More is faster and takes
    more memory; stage-2 patches are fastest in one chunk."""
    compile_solver: bool = False
    """Compile the inverse-skinning solver's iterations with ``torch.compile`` (the same results, about
    2× faster; the first steps compile, which takes seconds and, on a CPU, a C++ compiler; without one
    the solver stays eager with a warning)."""
    coarse_gradients: bool = True
    """Gradients through the stratified samples too (False: only through the importance samples; the
    render itself is unchanged)."""
    skip_empty_rays: bool = False
    """Evaluate no importance samples on rays whose stratified samples found no density (they missed the
    body shell; their importance samples almost always do too)."""
    normal_min_weight: float = 0.0
    """``t`` in [0, 1): take the normals (and their double backward) only on the rays of alpha above ``t``,
    at their heaviest samples holding ``1 − t`` of the ray's compositing weight (0: at every sample, as
    the pipeline does). The normal maps then miss only a share ``t`` of each ray's weight."""
    ray_bounds: str = "capsules"
    """``capsules`` (skip rays and depths no body shell can reach) or ``box`` (the pipeline's)."""
    patch_height: int = 0
    """Stage 2: height (HR pixels, a power of 2) of the patch rendered and judged per person (0: the whole
    window). Each person's patch lies at a random place in the window (rows and columns multiples of the
    SR scale); the image and normal discriminators see the patch and its place, the face discriminators a
    box rendered around the head, and the upsampling loss the patch. Every rendered pixel is exactly the
    whole render's; a quarter of the window costs about a quarter of the HR render and judging."""
    patch_width: int = 0
    """Stage 2: width of the patch (HR pixels, a power of 2; 0 with ``patch_height`` 0)."""
    selection_mode: str = "threshold"
    """Stage 2's semantic-guided sampling (``threshold`` or ``argmax``)."""
    depth_aggregation: bool = True
    """Stage 2's 3×3 depth aggregation (False: the "without depth aggregation" ablation)."""

    # -- discriminators and losses ---------------------------------------------------------------
    d_channel_base: int = 4096
    """Discriminator channels at a level of longer side r: ``min(d_channel_base // r, d_channel_max)``."""
    d_channel_max: int = 128
    """See ``d_channel_base``."""
    face_size: int = 16
    """Side of the face crops given to the face discriminators (pixels)."""
    face_crop_fraction: float = FACE_CROP_FRACTION
    """Face crop side as a fraction of the image height (the paper: H/8)."""
    use_normal_discriminators: bool = True
    """Judge normal maps (needs a dataset with normals)."""
    use_face_discriminators: bool = True
    """Judge face crops (image, and normals when those are judged)."""
    r1_gamma: float = 10.0
    """R1 weight γ (loss γ/2 · ‖∇D‖²); small batches want a larger γ."""
    r1_interval: int = 16
    """Lazy R1: every this many steps (0: never)."""
    reg_interval: int = 4
    """Lazy generator regularisation (eikonal, density TV): every this many steps (0: never)."""
    eikonal_weight: float = 0.1
    """Weight of the eikonal loss on each part's SDF at canonical shell points."""
    density_tv_weight: float = 0.1
    """Weight of the density-TV loss (neighbouring SDF values)."""
    reg_points: int = 512
    """Canonical shell points per image for the regularisers."""
    upsampling_loss: bool = True
    """Stage 2: the upsampling consistency loss (False: the "without upsampling loss" ablation)."""
    upsampling_loss_weight: float = 100.0
    """Stage 2: its weight (the paper: 100 for each of image, masks, normals)."""
    blur_sigma: float = 2.0
    """Initial σ (pixels) of the blur of every discriminator input, fading out (EG3D's fade-in)."""
    blur_fade_kimg: float = 20.0
    """Thousands of images over which the blur fades to nothing (0: no blur)."""
    augment_probability: float = 0.0
    """Probability per sample of a small translation of real and fake discriminator inputs."""
    augment_max_shift: int = 2
    """Largest translation in pixels."""
    warm_start_steps: int = 0
    """Stage 1: steps of the warm start that places every part on its body region before the first
    training step (``training/warm_start.py``; 0: none)."""
    warm_start_lr: float = 0.005
    """Adam learning rate of the warm start."""
    beta_lr: Optional[float] = None
    """Learning rate of the trained stage's β (the SDF → density sharpness; null: ``g_lr``). Adam moves a
    parameter by about its learning rate per step whatever the gradient's size, so at ``g_lr`` β (0.1 at
    the start) can collapse within a few dozen steps; a part that sits inside the body at that moment
    then has no density and no gradient left, and never comes back."""
    beta_min: float = 0.0
    """Least β after every generator step (0: no floor). Keeps the density transition at least this wide
    (metres), so that a part just inside the body still gets gradients."""
    coverage_floor: float = 0.0
    """Least share of the picture each part keeps in a generated batch, as a fraction of its share in the
    real batch (0: no floor; :func:`training.losses.coverage_floor_loss`). The loss is zero above the
    floor; below it, it pulls a vanishing part back out before it loses its gradients."""
    coverage_floor_weight: float = 1.0
    """Weight of the coverage-floor loss."""
    ema_kimg: float = 2.5
    """Half-life of the generator EMA in thousands of images."""
    ema_rampup: Optional[float] = 0.05
    """EMA ramp-up ratio (null: none)."""

    cpu_threads: int = 0
    """Threads of each training process on a CPU (0: this machine's cores divided among its training
    processes; ``accelerate launch`` alone would leave one thread per process)."""

    # -- data ------------------------------------------------------------------------------------
    cache_dataset: bool = True
    """Read every sample once into memory (small datasets at training size)."""
    mirror: bool = False
    """Add mirrored copies of the samples."""

    # -- logging and checkpoints -------------------------------------------------------------------
    logger: str = "tensorboard"
    """``tensorboard``, ``wandb`` or ``none``."""
    log_every: int = 10
    """Steps between scalar logs."""
    sample_every: int = 200
    """Steps between sample grids (image | semantics | normals); 0: only at the end."""
    num_samples: int = 4
    """People in each sample grid."""
    checkpointing_steps: int = 200
    """Steps between checkpoints (0: only at the end)."""
    checkpoints_total_limit: Optional[int] = 3
    """Keep at most this many checkpoints (null: all)."""
    push_to_hub: bool = False
    """Upload the final pipeline folder to ``hub_model_id``."""
    hub_model_id: Optional[str] = None
    """Hub repository ``owner/name`` for ``push_to_hub``."""

    def validate(self) -> "TrainingConfig":
        """Raise ``ValueError`` naming the first bad value; return self."""

        def positive_int(name: str, minimum: int = 1) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")

        def number(name: str, minimum: float = 0.0, strict: bool = False, maximum: float | None = None) -> None:
            check_number_in_range(getattr(self, name), name, minimum, math.inf if maximum is None else maximum, include_low=not strict)

        def choice(name: str, allowed: Sequence) -> None:
            check_choice(getattr(self, name), allowed, name)

        choice("stage", (1, 2))
        choice("preset", tuple(PRESETS))
        choice("ray_bounds", RAY_BOUNDS)
        choice("selection_mode", SELECTION_MODES)
        choice("logger", LOGGERS)
        if not isinstance(self.data_dir, str) or not self.data_dir:
            raise ValueError(f"`data_dir` must name a dataset folder, got {self.data_dir!r}.")
        if not isinstance(self.output_dir, str) or not self.output_dir:
            raise ValueError(f"`output_dir` must name a folder, got {self.output_dir!r}.")
        if self.stage == 2 and not self.stage1_pipeline:
            raise ValueError("`stage1_pipeline` must name the stage-1 pipeline folder for stage 2 (e.g. RUN1/pipeline), got none.")
        if self.stage == 2 and self.warm_start_steps:
            raise ValueError(f"`warm_start_steps` is for stage 1 (stage 2 starts from a trained stage 1), got {self.warm_start_steps}.")
        if self.stage == 2 and self.init_pipeline:
            raise ValueError("`init_pipeline` is for stage 1; stage 2 starts from `stage1_pipeline`.")
        for name in ("max_steps", "batch_size", "gradient_accumulation_steps", "face_size", "reg_points", "num_samples", "log_every"):
            positive_int(name)
        for name in ("seed", "crop_width", "num_stratified", "r1_interval", "reg_interval", "augment_max_shift", "sample_every", "checkpointing_steps", "num_root_inits", "warm_start_steps", "cpu_threads", "chunk_size"):
            positive_int(name, 0)
        positive_int("num_importance", -1)
        if self.crop_width and self.crop_width & (self.crop_width - 1):
            raise ValueError(f"`crop_width` must be 0 or a power of 2, got {self.crop_width!r}.")
        for name in ("patch_height", "patch_width"):
            positive_int(name, 0)
            value = getattr(self, name)
            if value & (value - 1):
                raise ValueError(f"`{name}` must be 0 or a power of 2, got {value!r}.")
        if bool(self.patch_height) != bool(self.patch_width):
            raise ValueError(f"`patch_height` and `patch_width` are both 0 (no patches) or both set, got {self.patch_height} and {self.patch_width}.")
        if self.stage == 1 and self.patch_height:
            raise ValueError(f"`patch_height`/`patch_width` are for stage 2 (stage 1 judges its whole window), got {self.patch_height}×{self.patch_width}.")
        for name in ("g_lr", "d_lr", "adam_eps", "warm_start_lr"):
            number(name, strict=True)
        if self.beta_lr is not None:
            number("beta_lr", strict=True)
        number("beta_min")
        for name in ("r1_gamma", "eikonal_weight", "density_tv_weight", "upsampling_loss_weight", "blur_sigma", "blur_fade_kimg", "ema_kimg"):
            number(name)
        number("augment_probability", maximum=1.0)
        number("coverage_floor", maximum=1.0)
        number("coverage_floor_weight")
        number("face_crop_fraction", strict=True, maximum=1.0)
        check_number_in_range(self.normal_min_weight, "normal_min_weight", 0.0, 1.0, include_high=False)  # [0, 1)
        if self.ema_rampup is not None:
            number("ema_rampup", strict=True)
        betas = self.adam_betas
        if not (isinstance(betas, (list, tuple)) and len(betas) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
            raise ValueError(f"`adam_betas` must be two numbers in [0, 1), got {betas!r}.")
        self.adam_betas = tuple(float(b) for b in betas)
        if self.checkpoints_total_limit is not None:
            positive_int("checkpoints_total_limit")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("`hub_model_id` must be set (owner/name) when `push_to_hub` is true.")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in dataclasses.fields(self)}


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainingConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainingConfig)}


def _coerce(name: str, value: Any, kind: Any) -> Any:
    """``value`` (from YAML or a ``key=value`` string) as the field's type; ValueError naming ``name``."""
    optional = typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind)
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind) if optional else kind
    if isinstance(value, str) and base is not str:
        if optional and value.lower() in ("null", "none", "~", ""):
            return None
        value = yaml.safe_load(value)
    if value is None:
        if optional:
            return None
        raise ValueError(f"`{name}` must not be null.")
    try:
        if base is bool:
            if not isinstance(value, bool):
                raise TypeError
            return value
        if base is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError
            return value
        if base is float:
            if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
                try:
                    value = float(value)
                except ValueError:
                    raise TypeError from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError
            return float(value)
        if base is str:
            return str(value)
        if base is tuple:
            if not isinstance(value, (list, tuple)):
                raise TypeError
            return tuple(value)
    except TypeError:
        raise ValueError(f"`{name}` must be of type {getattr(base, '__name__', base)}, got {value!r}.") from None
    return value


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainingConfig:
    """A validated :class:`TrainingConfig` from a YAML file and ``key=value`` overrides.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: For YAML that is not a mapping, unknown keys, malformed overrides or bad values.
    """
    types = _field_types()
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"--config {path}: no such file.")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {path} must hold a mapping of keys to values, got {type(loaded).__name__}.")
        values.update(loaded)
    for override in overrides:
        if "=" not in override:
            raise ValueError(f"overrides must look like key=value, got {override!r}.")
        key, value = override.split("=", 1)
        values[key.strip()] = value
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ValueError(f"unknown configuration keys {unknown}; allowed keys: {sorted(types)}.")
    config = TrainingConfig(**{key: _coerce(key, value, types[key]) for key, value in values.items()})
    return config.validate()
