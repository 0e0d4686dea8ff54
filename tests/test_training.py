"""Training with Accelerate (`training/`): which parameters each stage trains, a real two-process
launch, SIGKILL and resume, TensorBoard logs and samples, and clear errors for bad input. All on the
`tiny` preset, a few steps, on the CPU."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from semantichuman_hd import SemanticHumanPipeline
from semantichuman_hd.parts import PARTS
from training.config import load_config
from training.trainer import (
    CHECKPOINT_MANIFEST,
    METRICS_FILE,
    SUMMARY_FILE,
    Trainer,
    TrainingError,
    list_checkpoints,
)

REPO = Path(__file__).resolve().parent.parent
TRAIN = REPO / "training" / "train.py"
TINY1 = REPO / "training" / "configs" / "tiny_stage1.yaml"
TINY2 = REPO / "training" / "configs" / "tiny_stage2.yaml"
# Smallest useful runs: one thread so repeated runs are bit-identical.
FAST = ["batch_size=2", "num_stratified=6", "num_importance=6", "reg_points=16", "num_samples=1", "log_every=1"]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Eight procedural people at 128² (enough for tiny's stage 1 at 32² and stage 2 at 128²)."""
    out = tmp_path_factory.mktemp("data") / "synth"
    subprocess.run(
        [sys.executable, "-m", "semantichuman_hd", "make-dataset", "synthetic", "--num", "8", "--image-size", "128", "--out", str(out)],
        check=True, capture_output=True, env=_env(),
    )
    return out


@pytest.fixture(scope="module")
def stage1_pipeline(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stage1") / "pipeline"
    SemanticHumanPipeline.from_preset("tiny", seed=3).save_pretrained(folder)
    return folder


def _trainer(config_path, tmp_path, *overrides) -> Trainer:
    torch.manual_seed(0)
    config = load_config(config_path, [*FAST, "logger=none", f"output_dir={tmp_path / 'run'}", *overrides])
    return Trainer(config)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.named_parameters()}


def _changed(before: dict, module: torch.nn.Module) -> dict[str, bool]:
    return {name: not torch.equal(before[name], value.detach()) for name, value in module.named_parameters()}


# -- configuration ---------------------------------------------------------------------------------


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match=r"unknown configuration keys \['batch_sise'\]"):
        load_config(TINY1, ["data_dir=x", "batch_sise=4"])
    with pytest.raises(ValueError, match="`batch_size` must be an integer >= 1, got 0"):
        load_config(TINY1, ["data_dir=x", "batch_size=0"])
    with pytest.raises(ValueError, match="`g_lr` must be of type float"):
        load_config(TINY1, ["data_dir=x", "g_lr=fast"])
    with pytest.raises(ValueError, match="`ray_bounds` must be one of"):
        load_config(TINY1, ["data_dir=x", "ray_bounds=sphere"])
    with pytest.raises(ValueError, match="`stage1_pipeline` must name the stage-1 pipeline folder"):
        load_config(TINY2, ["data_dir=x"])
    with pytest.raises(ValueError, match="`data_dir` must name a dataset folder"):
        load_config(TINY1, [])
    with pytest.raises(ValueError, match="key=value"):
        load_config(TINY1, ["data_dir"])
    with pytest.raises(FileNotFoundError, match="--config"):
        load_config(tmp_path / "missing.yaml", ["data_dir=x"])
    for bad in ("beta_lr=0", "beta_min=-0.01", "coverage_floor=1.5", "coverage_floor_weight=-1", "normal_min_weight=1.0", "normal_min_weight=-0.1"):
        with pytest.raises(ValueError, match=bad.split("=")[0]):
            load_config(TINY1, ["data_dir=x", bad])
    for bad, message in (
        (["patch_height=64"], "both 0"), (["patch_height=48", "patch_width=32"], "power of 2"),
    ):
        with pytest.raises(ValueError, match=message):
            load_config(TINY2, ["data_dir=x", "stage1_pipeline=x", *bad])
    with pytest.raises(ValueError, match="are for stage 2"):
        load_config(TINY1, ["data_dir=x", "patch_height=16", "patch_width=8"])
    config = load_config(TINY1, ["data_dir=x", "crop_width=8", "ema_rampup=null", "beta_lr=1e-4"])
    assert config.crop_width == 8 and config.ema_rampup is None and config.beta_lr == 1e-4  # YAML reads 1e-4 as text


def test_beta_has_its_own_learning_rate_and_floor(tmp_path, dataset):
    """A generator step moves β by about `beta_lr` (Adam), not `g_lr`; `beta_min` floors it."""
    slow = _trainer(TINY1, tmp_path / "slow", f"data_dir={dataset}", "beta_lr=1e-6")
    before = float(slow.trained_beta.detach())
    slow.train_step()
    assert 0 < abs(float(slow.trained_beta.detach()) - before) <= 2e-6
    assert slow.g_optimizer.param_groups[1]["params"][0] is slow.trained_beta
    floored = _trainer(TINY1, tmp_path / "floor", f"data_dir={dataset}", "beta_min=0.3")
    floored.train_step()
    assert float(floored.trained_beta.detach()) == pytest.approx(0.3)


def test_coverage_floor_is_taken_on_the_judged_window(tmp_path, dataset):
    """The step's floor loss is the one its logged part coverages (generated and real) imply."""
    from training.losses import COVERAGE_EPS

    trainer = _trainer(TINY1, tmp_path, f"data_dir={dataset}", "coverage_floor=1.0")
    logs = trainer.train_step()
    fake = torch.tensor([logs[f"coverage/fake/{part}"] for part in PARTS])
    real = torch.tensor([logs[f"coverage/real/{part}"] for part in PARTS])
    expected = ((real - fake).clamp_min(0) / (real + COVERAGE_EPS)).mean()
    assert logs["loss/coverage_floor"] == pytest.approx(expected.item(), rel=1e-4, abs=1e-7)
    assert "loss/coverage_floor" not in _trainer(TINY1, tmp_path / "off", f"data_dir={dataset}").train_step()


def test_bad_datasets_and_pipelines_fail_before_training(tmp_path, dataset):
    with pytest.raises(FileNotFoundError, match="is not a dataset"):
        _trainer(TINY1, tmp_path, f"data_dir={tmp_path / 'nowhere'}")
    small = tmp_path / "small"
    subprocess.run(
        [sys.executable, "-m", "semantichuman_hd", "make-dataset", "synthetic", "--num", "2", "--image-size", "16", "--out", str(small)],
        check=True, capture_output=True, env=_env(),
    )
    with pytest.raises(ValueError, match="holds 16-pixel pictures but stage training renders 32 pixels"):
        _trainer(TINY1, tmp_path, f"data_dir={small}")
    bare = tmp_path / "bare"
    subprocess.run(
        [sys.executable, "-m", "semantichuman_hd", "make-dataset", "synthetic", "--num", "2", "--image-size", "32", "--no-normals", "--out", str(bare)],
        check=True, capture_output=True, env=_env(),
    )
    with pytest.raises(ValueError, match="The normal discriminators need normal maps"):
        _trainer(TINY1, tmp_path, f"data_dir={bare}")
    assert _trainer(TINY1, tmp_path, f"data_dir={bare}", "use_normal_discriminators=false").D_plain.names == ("image", "semantic", "face_image")
    with pytest.raises(FileNotFoundError, match="is not a pipeline folder"):
        _trainer(TINY2, tmp_path, f"data_dir={dataset}", f"stage1_pipeline={tmp_path}")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_train_cli_reports_config_errors_with_status_2(tmp_path):
    result = subprocess.run(
        [sys.executable, str(TRAIN), "--config", str(TINY1), "data_dir=x", "bogus=1"], capture_output=True, text=True, env=_env()
    )
    assert result.returncode == 2
    assert "unknown configuration keys ['bogus']" in result.stderr and "Traceback" not in result.stderr


# -- what each stage trains ------------------------------------------------------------------------


def test_stage1_step_trains_mapper_and_local_generators_only(tmp_path, dataset):
    trainer = _trainer(TINY1, tmp_path, f"data_dir={dataset}")
    G, D = trainer.G_plain, trainer.D_plain
    before_g, before_d = _snapshot(G), _snapshot(D)
    trainer.train_step()
    changed = _changed(before_g, G)
    frozen = {name for name in changed if name.startswith("super_resolution.")}
    assert frozen and not any(changed[name] for name in frozen), "stage 1 must leave the super-resolution module bit-identical"
    trained = [name for name in changed if name not in frozen]
    assert all(changed[name] for name in trained), [name for name in trained if not changed[name]]
    assert all(_changed(before_d, D).values())
    assert trainer.state.step == 1 and trainer.state.images_seen == 2
    # The render shortcuts (FAST: 6 + 6 samples) are training's; the exported pipeline keeps its own.
    assert (G.settings.num_stratified, G.settings.num_importance) == (6, 6)
    preset = SemanticHumanPipeline.from_preset("tiny").config
    assert (trainer.pipeline_config["num_stratified"], trainer.pipeline_config["num_importance"]) == (preset.num_stratified, preset.num_importance)


def test_warm_start_places_each_part_on_its_body_region(tmp_path, dataset):
    from semantichuman_hd.body.smpl_format import SMPL_JOINT_NAMES
    from training.warm_start import REGIONS

    trainer = _trainer(TINY1, tmp_path, f"data_dir={dataset}", "warm_start_steps=60", "warm_start_lr=0.01", "batch_size=4", "reg_points=256")
    G = trainer.G_plain
    before = _snapshot(G)
    result = trainer.warm_start()
    assert result.steps == 60 and result.last_loss < 0.5 * result.first_loss
    assert not any(_changed(before, G)[name] for name in before if name.startswith("super_resolution."))
    ema = dict(trainer.ema.named_parameters())
    assert all(torch.equal(ema[name], value) for name, value in G.named_parameters())  # the EMA starts there
    assert [json.loads(line) for line in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()][0]["warm_start_steps"] == 60
    # Canonical surface points on each region's bones: its part's Δsdf is the highest there.
    vertices = G.deformer.body_model.canonical_vertices()
    owner = G.deformer.body_model.lbs_weights.argmax(1)
    with torch.no_grad():
        z = torch.randn(2, 1, G.mapper.config.z_dim, generator=torch.Generator().manual_seed(5)).expand(-1, len(PARTS), -1)
        planes = G.local_generators.synthesize(G.mapping(z)).planes
        delta, _ = G.local_generators.decode(planes, vertices.expand(2, -1, -1).contiguous(), None)
    # Mean Δsdf of each placed part (rows) over each region (columns): highest on its own region.
    placed = ("body", "tops", "bottoms", "shoes")
    regions = [torch.isin(owner, torch.tensor([SMPL_JOINT_NAMES.index(name) for name in REGIONS[part]])) for part in placed]
    table = torch.stack([torch.stack([delta[:, region, PARTS.index(part)].mean() for region in regions]) for part in placed])
    off_diagonal = table.masked_fill(torch.eye(len(placed), dtype=torch.bool), -math.inf).amax(1)
    assert bool((table.diagonal() > off_diagonal + 0.05).all()), table
    with pytest.raises(ValueError, match="warm_start_steps"):
        load_config(TINY2, ["data_dir=x", "stage1_pipeline=y", "warm_start_steps=5"])


@pytest.mark.parametrize("patch", [(), ("patch_height=64", "patch_width=32")], ids=["whole-window", "patches"])
def test_stage2_step_trains_super_resolution_only(tmp_path, dataset, stage1_pipeline, patch):
    trainer = _trainer(TINY2, tmp_path, f"data_dir={dataset}", f"stage1_pipeline={stage1_pipeline}", *patch)
    G = trainer.G_plain
    judged = trainer.D_plain.discriminators["image"].config
    assert (judged.height, judged.width) == ((64, 32) if patch else (128, 64))  # the patch, or the 128×64 HR window
    assert judged.c_dim == trainer.data.dataset.labels.shape[1] + (2 if patch else 0)  # + the patch's place
    before = _snapshot(G)
    asked_all_parts = []
    synthesis = G.synthesis
    G.synthesis = lambda *args, **kwargs: asked_all_parts.append(kwargs["all_hr_parts"]) or synthesis(*args, **kwargs)
    first = trainer.train_step()  # the HR output layers start at zero: blocks behind them get gradients from step 2 on
    logs = trainer.train_step()
    del G.synthesis
    assert asked_all_parts == [True, False]  # step 0 regularises every part's HR planes; step 1 renders only
    changed = _changed(before, G)
    trained = {name for name in changed if name.startswith("super_resolution.")}
    assert all(changed[name] for name in trained), [name for name in trained if not changed[name]]
    assert not any(changed[name] for name in changed if name not in trained), "stage 2 must leave stage 1 bit-identical"
    assert "loss/r1" in first and "loss/r1" not in logs  # lazy R1: every r1_interval steps
    assert logs["loss/upsampling"] > 0 and "semantic" not in trainer.D_plain.names
    if patch:
        with pytest.raises(ValueError, match="must fit the 128×64 HR window"):
            _trainer(TINY2, tmp_path / "big", f"data_dir={dataset}", f"stage1_pipeline={stage1_pipeline}", "patch_height=256", "patch_width=32")


def test_bf16_mixed_precision_trains_both_stages(tmp_path, dataset, stage1_pipeline, monkeypatch):
    # `accelerate launch --mixed_precision bf16` sets this; Accelerate then wraps each prepared model's
    # forward in autocast and rebuilds its output in float32 from a mapping of the output's fields.
    from accelerate.state import AcceleratorState

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    AcceleratorState._reset_state(True)  # one process holds one Accelerator state; the earlier tests' has none
    try:
        _train_both_stages_in_bf16(tmp_path, dataset, stage1_pipeline)
    finally:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
        AcceleratorState._reset_state(True)


def _train_both_stages_in_bf16(tmp_path, dataset, stage1_pipeline):
    for config, extra, trains in (
        (TINY1, [], lambda name: not name.startswith("super_resolution.")),
        (TINY2, [f"stage1_pipeline={stage1_pipeline}"], lambda name: name.startswith("super_resolution.")),
    ):
        trainer = _trainer(config, tmp_path / config.stem, f"data_dir={dataset}", *extra)
        assert trainer.accelerator.mixed_precision == "bf16"
        G = trainer.G_plain
        before = _snapshot(G)
        logs = [trainer.train_step() for _ in range(2)]  # stage 2's HR blocks get gradients from step 2 on
        assert all(math.isfinite(value) for log in logs for value in log.values() if isinstance(value, float)), logs
        changed = _changed(before, G)
        assert all(changed[name] for name in changed if trains(name)), [name for name in changed if trains(name) and not changed[name]]
        assert not any(changed[name] for name in changed if not trains(name))
        labels = trainer.data.dataset.labels[:2].to(trainer.device)
        with torch.no_grad():
            out = trainer.G(torch.randn(2, len(PARTS), G.mapper.config.z_dim), labels, stage=trainer.config.stage)
        assert out.image.dtype == torch.float32 and out.triplanes.planes.dtype == torch.float32


def test_gradient_accumulation_counts_one_step_per_n_batches(tmp_path, dataset):
    trainer = _trainer(TINY1, tmp_path, f"data_dir={dataset}", "gradient_accumulation_steps=2")
    before = _snapshot(trainer.G_plain)
    trainer.train_step()
    assert (trainer.state.step, trainer.state.batches) == (0, 1)
    assert not any(_changed(before, trainer.G_plain).values())  # gradients summed, no update yet
    trainer.train_step()
    assert (trainer.state.step, trainer.state.batches, trainer.state.images_seen) == (1, 2, 4)
    changed = _changed(before, trainer.G_plain)
    assert all(changed[name] for name in changed if not name.startswith("super_resolution."))
    assert not torch.equal(trainer.batch_indices(0), trainer.batch_indices(1))  # each batch draws its own samples


def test_export_pushes_the_ema_pipeline_when_asked(tmp_path, dataset, monkeypatch):
    pushed = []
    monkeypatch.setattr(SemanticHumanPipeline, "push_to_hub", lambda self, repo_id, **kwargs: pushed.append((repo_id, self)))
    trainer = _trainer(TINY1, tmp_path, f"data_dir={dataset}", "push_to_hub=true", "hub_model_id=someone/tiny-human")
    with torch.no_grad():  # as if stage 1 had trained the LR decoders and β away from their initial values
        for parameter in trainer.ema.local_generators.decoders.parameters():
            parameter.add_(0.01)
        trainer.ema.local_generators.beta.mul_(0.5)
    folder = trainer.export()
    assert [repo for repo, _ in pushed] == ["someone/tiny-human"]
    saved = SemanticHumanPipeline.from_pretrained(folder)
    for (name, a), (_, b) in zip(saved.local_generators.state_dict().items(), trainer.ema.local_generators.state_dict().items()):
        assert torch.equal(a, b), name  # the folder holds the EMA weights
    # Stage 1 leaves the SR module untrained: the folder's starts from the trained LR decoders and β.
    for (name, a), (_, b) in zip(saved.super_resolution.decoders.state_dict().items(), trainer.ema.local_generators.decoders.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(saved.super_resolution.beta, trainer.ema.local_generators.beta)


def test_nan_loss_stops_with_a_clear_error_and_keeps_checkpoints(tmp_path, dataset, monkeypatch):
    trainer = _trainer(TINY1, tmp_path, f"data_dir={dataset}")
    trainer.train_step()
    saved = trainer.save_checkpoint()
    manifest = (saved / CHECKPOINT_MANIFEST).read_text()
    before = _snapshot(trainer.G_plain)
    monkeypatch.setattr("training.trainer.generator_loss", lambda logits: torch.tensor(float("nan")))
    with pytest.raises(TrainingError, match=r"the generator loss is nan at step 1; nothing was updated and the last checkpoint .*checkpoint-1 is intact"):
        trainer.train_step()
    assert not any(_changed(before, trainer.G_plain).values())
    assert (saved / CHECKPOINT_MANIFEST).read_text() == manifest
    # Saving the same step again swaps a complete new folder in; no staging folder is left behind.
    assert trainer.save_checkpoint() == saved and list_checkpoints(trainer.checkpoint_dir) == [saved]
    assert sorted(path.name for path in trainer.checkpoint_dir.iterdir()) == [saved.name]


def test_corrupted_truncated_or_incomplete_checkpoints_are_refused(tmp_path, dataset):
    trainer = _trainer(TINY1, tmp_path, f"data_dir={dataset}", "checkpoints_total_limit=5")
    trainer.train_step()
    first = trainer.save_checkpoint()
    trainer.train_step()
    second = trainer.save_checkpoint()
    assert list_checkpoints(trainer.checkpoint_dir) == [first, second]
    weights = sorted(first.glob("*.safetensors"))[0]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(TrainingError, match=f"checkpoint {first} is corrupted: {weights.name} does not match"):
        trainer.resume(str(first))
    truncated = sorted(second.glob("*.safetensors"))[0]
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(TrainingError, match="is corrupted"):
        trainer.resume("latest")
    (second / CHECKPOINT_MANIFEST).unlink()
    with pytest.raises(TrainingError, match="is incomplete"):
        trainer.resume(str(second))
    assert list_checkpoints(trainer.checkpoint_dir) == [first]  # one without a manifest is not a checkpoint


# -- real launches ---------------------------------------------------------------------------------


def _metrics(run: Path) -> dict[int, dict]:
    """The last logged values of each step (a killed run may have logged some twice)."""
    lines = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    return {line["step"]: line for line in lines}


def test_two_process_launch_keeps_ranks_identical(tmp_path, dataset):
    run = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29617",
        str(TRAIN), "--config", str(TINY1), *FAST, "max_steps=2", "checkpointing_steps=0", "sample_every=0",
        f"data_dir={dataset}", f"output_dir={run}", "logger=none",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run / SUMMARY_FILE).read_text())
    assert summary["num_processes"] == 2 and len(summary["process_digests"]) == 2
    assert summary["process_digests"][0] == summary["process_digests"][1]
    assert summary["images_seen"] == 2 * 2 * 2  # steps × batch × processes


@pytest.mark.parametrize("script", ["training/train.py", "benchmarks/bench_train.py"])
def test_scripts_run_their_own_checkout_before_an_installed_copy(tmp_path, script):
    """The training script and its benchmark import this checkout's package, also where another copy is
    importable (installed, or on PYTHONPATH): a benchmark run from an older checkout measures that code."""
    other = tmp_path / "semantichuman_hd"
    other.mkdir()
    (other / "__init__.py").write_text('raise ImportError("imported the other copy of semantichuman_hd")\n')
    env = {**_env(), "PYTHONPATH": str(tmp_path), "SEMANTICHUMAN_KEEP_MALLOC": "1"}
    result = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout


def test_training_benchmark_times_a_two_process_launch(tmp_path, dataset):
    report = tmp_path / "bench.json"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic_32_8").symlink_to(dataset)  # the benchmark's dataset for tiny stage 1
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29618",
        str(REPO / "benchmarks" / "bench_train.py"), "--presets", "tiny", "--stages", "1", "--steps", "1", "--warmup", "0",
        "--samples", "8", "--data", str(tmp_path / "data"), "--out", str(report), "--set", *FAST,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('"records"') == 1  # only the main process reports
    (record,) = json.loads(report.read_text())["records"]
    assert record["num_processes"] == 2 and record["batch_size"] == 2
    assert len(record["peak_memory_mib_per_process"]) == 2 and record["peak_memory_mib"] == sum(record["peak_memory_mib_per_process"])
    (seconds,) = record["seconds_per_step"]
    assert record["images_per_second"] == pytest.approx(2 * 2 / seconds)  # both processes' images


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, dataset):
    common = [
        sys.executable, str(TRAIN), "--config", str(TINY1), *FAST, "max_steps=4", "checkpointing_steps=2", "sample_every=0",
        f"data_dir={dataset}", "logger=none",
    ]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([*common, f"output_dir={straight}"], check=True, capture_output=True, env=_env(), timeout=600)

    process = subprocess.Popen([*common, f"output_dir={killed}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    checkpoint = killed / "checkpoints" / "checkpoint-2" / CHECKPOINT_MANIFEST
    deadline = time.monotonic() + 600
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert checkpoint.exists() and not (killed / "pipeline").exists()

    subprocess.run([*common, f"output_dir={killed}", "--resume_from_checkpoint", "latest"], check=True, capture_output=True, env=_env(), timeout=600)
    expected, resumed = _metrics(straight), _metrics(killed)
    for step in (3, 4):
        for key in ("loss/g_adversarial", "loss/d", "logits/real", "logits/fake", "beta"):
            assert resumed[step][key] == pytest.approx(expected[step][key], rel=1e-5, abs=1e-7), (step, key)
    a = SemanticHumanPipeline.from_pretrained(straight / "pipeline")
    b = SemanticHumanPipeline.from_pretrained(killed / "pipeline")
    # Two uninterrupted CPU runs already differ by up to ~1e-5 in a few weights (float rounding that Adam's
    # m/√v turns into a share of the learning rate where a gradient is near zero). A resume that lost the
    # optimiser state or the EMA moves weights by about the learning rate (2.5e-3), 25× this tolerance.
    for (name, x), (_, y) in zip(a.local_generators.state_dict().items(), b.local_generators.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-4, msg=name)
    assert json.loads((killed / SUMMARY_FILE).read_text())["step"] == 4


def test_short_run_writes_tensorboard_scalars_samples_and_a_pipeline(tmp_path, dataset):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "tb"
    command = [
        sys.executable, str(TRAIN), "--config", str(TINY1), *FAST, "max_steps=3", "sample_every=2", "checkpointing_steps=2",
        f"data_dir={dataset}", f"output_dir={run}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    event_dirs = sorted({p.parent for p in (run / "logs").rglob("events.out.tfevents.*")})
    assert event_dirs
    accumulator = EventAccumulator(str(event_dirs[0]))
    accumulator.Reload()
    scalars = set(accumulator.Tags()["scalars"])
    assert {"loss/g_adversarial", "loss/d", "loss/r1", "loss/eikonal", "loss/density_tv", "beta", "images_per_second"} <= scalars
    assert {f"coverage/{kind}/{part}" for kind in ("fake", "real") for part in PARTS} <= scalars
    assert [event.step for event in accumulator.Scalars("loss/d")] == [1, 2, 3]
    assert "samples" in accumulator.Tags()["images"]
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step-0000002.png", "step-0000003.png"]
    pipe = SemanticHumanPipeline.from_pretrained(run / "pipeline")
    assert pipe(num_images=1, output_type="np").images.shape == (1, 32, 32, 3)
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["checkpoint-2", "checkpoint-3"]
