"""Training speed: images per second and peak memory of full training steps, per preset and stage.

A step is what ``training/train.py`` runs: a generator step (render with normals' double backward,
every discriminator, lazy eikonal and density TV amortised over their interval) and a discriminator
step (real and fake, lazy R1 amortised), plus the EMA update. Stage-1 records also hold the render
fidelity: PSNR of the training render against the pipeline's reference render of the same field. Steps are timed with the committed
configs (``training/configs/{preset}_stage{stage}.yaml``; ``key=value`` overrides after ``--set``) on a
procedural dataset generated once into ``--data`` (default a cache folder). The first ``--warmup``
steps are not timed; the timed steps cover one full lazy-regularisation cycle by default. The steps
start from the preset's random weights, with ``--weights warm_start`` (stage 1) from them after the
config's warm start (what a run from scratch times at its first step), or with ``--weights bundled`` from
the package's trained ``demo`` checkpoint (stage 1 resumes it through ``init_pipeline``, stage 2 trains on
it): a trained model's parts are compact and its surfaces sharp, so its renders cost less than a random
model's, whose parts fill the whole shell; that is the speed of most of a run. Prints JSON, one record
per (preset, stage)::

    python benchmarks/bench_train.py [--presets demo] [--stages 1 2] [--steps 16] [--device cpu]
                                     [--weights random|warm_start|bundled]
                                     [--out benchmarks/results/bench_train_cpu.json] [--set batch_size=8 ...]

Launched as training is, with ``accelerate launch --multi_gpu --num_processes N benchmarks/bench_train.py
...``, it times N data-parallel processes (``batch_size`` is then per process, as in training):
``images_per_second`` counts every process's images and ``peak_memory_mib`` sums their peaks; the main
process prints the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's code, also where another copy of the package is installed

if __name__ == "__main__":  # as training/train.py: restart with the heap on huge pages, before anything else
    from semantichuman_hd.host_memory import restart_with_huge_pages

    restart_with_huge_pages()

import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from accelerate.utils import gather_object  # noqa: E402

from reporting import MIB, machine_report, machine_speed, peak_rss_mib, print_report, synchronize  # noqa: E402
from training.config import load_config  # noqa: E402
from training.trainer import Trainer  # noqa: E402

from semantichuman_hd.body.deformer import NUM_ROOT_INITS  # noqa: E402
from semantichuman_hd.generator import scene_from_labels  # noqa: E402
from semantichuman_hd.evaluation.pictures import psnr  # noqa: E402
from semantichuman_hd.parts import NUM_PARTS  # noqa: E402
from semantichuman_hd.presets import get_preset  # noqa: E402
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline  # noqa: E402
from semantichuman_hd.rendering.compositor import normals_to_picture  # noqa: E402

def ensure_dataset(folder: Path, size: int, count: int) -> Path:
    """A procedural dataset of ``count`` people at ``size`` pixels in ``folder`` (made once)."""
    target = folder / f"synthetic_{size}_{count}"
    if not (target / "dataset.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "semantichuman_hd", "make-dataset", "synthetic", "--num", str(count),
             "--image-size", str(size), "--out", str(target), "--workers", "2"],
            check=True,
        )
    return target


def render_fidelity(trainer: Trainer, count: int = 4) -> dict:
    """How closely the training render (the config's ray bounds, window, samples and solver starts, and
    the run's mixed precision) matches the pipeline's reference render (box bounds, full frame, the
    preset's samples, 3 solver starts, float32) of the same stage-1 field: PSNR of the image, the masks
    and the normal pictures over the window, for ``count`` random people seen as the first ``count``
    dataset labels say."""
    G = trainer.G_plain
    labels = trainer.data.batch(torch.arange(count), trainer.device)["labels"]
    cameras, smpl = scene_from_labels(labels)
    posed = G.pose(**smpl)
    preset = get_preset(trainer.config.preset)
    reference_settings = dataclasses.replace(
        G.settings, num_root_inits=NUM_ROOT_INITS, num_stratified=preset.num_stratified, num_importance=preset.num_importance,
        skip_empty_rays=False, normal_min_weight=0.0,
    )
    training_settings = G.settings
    with torch.no_grad():
        z = torch.randn(count, 1, G.mapper.config.z_dim, generator=torch.Generator().manual_seed(0)).expand(-1, NUM_PARTS, -1)
        z = z.to(trainer.device)
        with trainer.accelerator.autocast():  # as the training step runs (a no-op without mixed precision)
            lr = G.local_generators.synthesize(G.mapping(z))
            fast = G.render_stage1(lr, posed, cameras, columns=trainer.columns, ray_bounds=trainer.config.ray_bounds)
        if trainer.accelerator.mixed_precision != "no":  # the reference's tri-planes in float32
            lr = G.local_generators.synthesize(G.mapping(z))
        G.settings = reference_settings
        try:
            reference = G.render_stage1(lr, posed, cameras, ray_bounds="box")
        finally:
            G.settings = training_settings
    window = slice(*trainer.columns)

    def picture(output):
        return normals_to_picture(output.normals, output.alpha, dim=1)

    return {
        "reference": {
            "ray_bounds": "box", "num_stratified": preset.num_stratified, "num_importance": preset.num_importance,
            "num_root_inits": NUM_ROOT_INITS, "skip_empty_rays": False, "normal_min_weight": 0.0,
        },
        "image_psnr_db": psnr(fast.image, reference.image[..., window]),
        "masks_psnr_db": psnr(fast.masks, reference.masks[..., window]),
        "normals_psnr_db": psnr(picture(fast), picture(reference)[..., window]),
    }


def dataset_size(preset: str, stage: int) -> int:
    """The image size a stage trains on: the preset's low resolution in stage 1, its high in stage 2."""
    config = get_preset(preset)
    return config.low_resolution if stage == 1 else config.high_resolution


def bundled_float32_copy(data_root: Path) -> Path:
    """The bundled ``demo`` checkpoint saved once as a float32 pipeline folder (what training loads)."""
    folder = data_root / "demo_bundled_pipeline"
    if not (folder / "model_index.json").is_file():
        SemanticHumanPipeline.from_pretrained().save_pretrained(folder)
    return folder


def run(preset: str, stage: int, args, data_root: Path, stage1: Path | None) -> dict:
    config_path = REPO / "training" / "configs" / f"{preset}_stage{stage}.yaml"
    probe = load_config(config_path, ["data_dir=x", *(["stage1_pipeline=x"] if stage == 2 else []), *args.set])
    size = dataset_size(preset, stage)
    data = ensure_dataset(data_root, size, args.samples)
    with tempfile.TemporaryDirectory() as output:
        overrides = [f"data_dir={data}", f"output_dir={output}", "logger=none", *args.set]
        if stage == 2:
            overrides.append(f"stage1_pipeline={stage1}")
        elif args.weights == "bundled":
            overrides.append(f"init_pipeline={bundled_float32_copy(data_root)}")
        trainer = Trainer(load_config(config_path, overrides))
        device = trainer.device
        mixed_precision = trainer.accelerator.mixed_precision  # `accelerate launch --mixed_precision` or its variable
        if args.weights == "warm_start":
            trainer.warm_start()  # as `Trainer.train` does before the first step
        fidelity = render_fidelity(trainer) if stage == 1 and trainer.accelerator.is_main_process else None
        speed_before = machine_speed(device)  # before the warm-up steps, which absorb its effect on the heap
        for _ in range(args.warmup):
            trainer.train_step()
        synchronize(device)
        seconds = []
        for _ in range(args.steps):
            begin = time.perf_counter()
            trainer.train_step()
            synchronize(device)
            seconds.append(time.perf_counter() - begin)
        peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else peak_rss_mib()
        speed_after = machine_speed(device)
    batch = probe.batch_size
    processes = trainer.accelerator.num_processes
    peaks = gather_object([peak]) if processes > 1 else [peak]
    return {
        "preset": preset,
        "stage": stage,
        "images_per_second": batch * processes * len(seconds) / sum(seconds),
        "seconds_per_step_median": statistics.median(seconds),
        "seconds_per_step": seconds,
        "peak_memory_mib": sum(peaks),
        "batch_size": batch,
        "num_processes": processes,
        **({"peak_memory_mib_per_process": peaks} if processes > 1 else {}),
        "render_size": size,
        "crop_width": probe.crop_width,
        "ray_bounds": probe.ray_bounds,
        "r1_interval": probe.r1_interval,
        "reg_interval": probe.reg_interval,
        "weights": args.weights,
        "mixed_precision": mixed_precision,
        "overrides": list(args.set),
        "warmup_steps": args.warmup,
        # The machine's speed before the warm-up and after the timed steps (reporting.machine_speed).
        "machine_speed": {"before": speed_before, "after": speed_after},
        **({"render_fidelity": fidelity} if fidelity else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["demo"], choices=["tiny", "demo", "paper"])
    parser.add_argument("--stages", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    parser.add_argument("--steps", type=int, default=16, help="timed steps (default 16: one R1 cycle)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--samples", type=int, default=32, help="people in the benchmark dataset")
    parser.add_argument("--data", default=None, help="folder for the benchmark datasets (default: a cache folder)")
    parser.add_argument("--device", default="cpu", help="only 'cpu' or a CUDA device visible to accelerate")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--weights", choices=["random", "warm_start", "bundled"], default="random",
        help="start from the preset's random weights, from them after the config's warm start (stage 1), "
        "or from the bundled demo checkpoint (demo only)",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value", help="configuration overrides")
    parser.add_argument("--out", default=None, help="also write the JSON report here")
    args = parser.parse_args()
    if args.weights == "bundled" and args.presets != ["demo"]:
        parser.error(f"--weights bundled is the demo checkpoint: use it with --presets demo, got {' '.join(args.presets)}")
    if args.weights == "warm_start" and args.stages != [1]:
        parser.error(f"--weights warm_start is stage 1's start (stage 2 starts from a trained stage 1): use it with --stages 1, got {' '.join(map(str, args.stages))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    data_root = Path(args.data) if args.data else Path.home() / ".cache" / "semantichuman-hd" / "bench_train"
    data_root.mkdir(parents=True, exist_ok=True)
    # Under `accelerate launch`, the main process makes the datasets and pipeline folders, the others wait.
    state = PartialState(cpu=not torch.cuda.is_available())
    records = []
    for preset in args.presets:
        stage1 = None
        with state.main_process_first():
            if 2 in args.stages and args.weights == "bundled":
                stage1 = bundled_float32_copy(data_root)
            elif 2 in args.stages:
                stage1 = data_root / f"{preset}_stage1_pipeline"
                if not (stage1 / "model_index.json").is_file():
                    SemanticHumanPipeline.from_preset(preset).save_pretrained(stage1)
            for stage in args.stages:
                ensure_dataset(data_root, dataset_size(preset, stage), args.samples)
        for stage in args.stages:
            records.append(run(preset, stage, args, data_root, stage1))
    if state.is_main_process:
        print_report({**machine_report(torch.device(args.device)), "records": records}, args.out)


if __name__ == "__main__":
    main()
