"""One evaluation run: generated people against a dataset folder, every metric in one JSON-ready dict,
and its Markdown table (``semantichuman-hd evaluate``)."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..parts import NUM_PARTS, PARTS
from ..rendering.cameras import fixed_camera
from ..rendering.compositor import COMPOSITIONS, DEPTH_ALPHA_THRESHOLD
from ..scene import centering_transl
from .fid import KID_SCALE, KID_SUBSET_SIZE, KID_SUBSETS, MIN_FID_SAMPLES, fid_from_features, kernel_inception_distance
from .pictures import HEAD_JOINT, face_crops, label_maps
from .reference import dataset_digest, open_dataset, real_features, reference_part_stats, sample_conditions
from .structure import (
    MASK_THRESHOLD,
    disentanglement,
    guided_sampling_fidelity,
    person_latents,
    sr_consistency,
)

FID_METRICS: dict[str, str] = {"fid": "image", "fid_normals": "normals", "fid_face": "face"}
"""FID/KID metrics and the pictures each measures (KID×1000 is reported with each FID)."""

METRICS: tuple[str, ...] = (*FID_METRICS, "part_stats", "disentanglement", "sr_consistency", "guided_sampling")
"""Metric names of :func:`evaluate` and ``--metrics``."""

RESOLUTIONS: tuple[str, ...] = ("low", "high")
"""Resolutions FID and the part statistics can be measured at."""


@dataclass(frozen=True)
class EvaluationSizes:
    """How many people each metric uses.

    Attributes:
        num: generated people for FID/KID and the part statistics.
        num_real: dataset pictures for the real statistics (None = all, the paper's protocol).
        num_pairs: pairs of people of the disentanglement score.
        num_sr: people of the SR consistency.
        num_guided: people of the guided-sampling fidelity (each rendered by brute force too).
    """

    num: int
    num_real: int | None
    num_pairs: int
    num_sr: int
    num_guided: int


FULL_SIZES = EvaluationSizes(num=50_000, num_real=None, num_pairs=100, num_sr=100, num_guided=8)
"""The paper's protocol for FID/KID (50K generated against the whole dataset) and sizes of the other metrics."""

QUICK_SIZES = EvaluationSizes(num=8, num_real=8, num_pairs=1, num_sr=1, num_guided=1)
"""``--quick``: CI-sized (seconds on ``tiny``); its FID is not comparable to anything."""


def check_metrics(metrics) -> list[str]:
    """``metrics`` (a list or a comma-separated string) as a list of :data:`METRICS`, in that order."""
    if isinstance(metrics, str):
        metrics = [name.strip() for name in metrics.split(",") if name.strip()]
    metrics = list(metrics)
    unknown = [name for name in metrics if name not in METRICS]
    if unknown or not metrics:
        raise ValueError(f"`--metrics` must be a comma-separated list of {list(METRICS)}, got {unknown or metrics!r}.")
    return [name for name in METRICS if name in metrics]


def small_fid_warning(num: int) -> str | None:
    """The warning for FID from ``num`` generated images, or None when ``num`` is large enough."""
    if num >= MIN_FID_SAMPLES:
        return None
    return (
        f"FID from {num} generated images (< {MIN_FID_SAMPLES}, the feature dimension) is biased upward and unstable "
        f"and comparable only to runs of the same size; read KID, the small-sample metric (unbiased), or use "
        f"--num ≥ {MIN_FID_SAMPLES} (the paper: 50000)."
    )


def _check_positive(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def _generated_head_centres(pipe, conditions) -> torch.Tensor:
    """Where the pipeline draws each person's head joint: its posed body centred on the origin (as the
    pipeline poses it), seen by the fixed camera."""
    with torch.no_grad():
        body = pipe.body_model(
            betas=conditions.betas.to(pipe.device), body_pose=conditions.body_pose.to(pipe.device), global_orient=conditions.global_orient.to(pipe.device)
        )
    head = body.joints[:, HEAD_JOINT] + centering_transl(body.vertices)
    pixels, _ = fixed_camera(len(conditions), device=pipe.device).project(head.unsqueeze(1))
    return pixels[:, 0].cpu()


def _fid_entry(generated: np.ndarray, real: np.ndarray, seed: int) -> dict:
    kid_mean, kid_std = kernel_inception_distance(generated, real, num_subsets=KID_SUBSETS, subset_size=KID_SUBSET_SIZE, seed=seed)
    return {
        "fid": fid_from_features(generated, real),
        "kid_x1000": kid_mean * KID_SCALE,
        "kid_std_x1000": kid_std * KID_SCALE,
        "num_generated": int(generated.shape[0]),
        "num_real": int(real.shape[0]),
        "kid_subset_size": int(min(KID_SUBSET_SIZE, generated.shape[0], real.shape[0])),
    }


def _bar(total: int, description: str, enabled: bool):
    return tqdm(total=total, desc=description, unit="img", disable=not enabled, leave=False)


def evaluate(
    pipe,
    data,
    metrics=None,
    sizes: EvaluationSizes | None = None,
    quick: bool = False,
    resolution: str = "low",
    seed: int = 0,
    batch_size: int = 4,
    inception_weights=None,
    progress: bool = True,
) -> dict:
    r"""Evaluate ``pipe`` against the dataset folder ``data``.

    Parameters:
        pipe: A ``SemanticHumanPipeline`` (its ``truncation_psi`` config is used: 1 in the paper).
        data: A dataset folder (docs/dataset_format.md): poses and cameras are drawn from its labels, and
            its pictures are the real set.
        metrics: Names of :data:`METRICS` (list or comma-separated); default all of them, less
            ``fid_normals`` when the dataset has no normal maps.
        sizes: How many people each metric uses; default :data:`FULL_SIZES` (:data:`QUICK_SIZES` with
            ``quick``).
        quick: CI-sized run.
        resolution: ``"low"`` or ``"high"``: the pictures FID and the part statistics see.
        seed: Seeds the poses drawn from the dataset (``numpy.random.default_rng(seed)``) and the latents
            (person ``i``: :func:`~semantichuman_hd.evaluation.structure.person_seed`): the same arguments
            repeat a run exactly.
        batch_size: People generated together.
        inception_weights: ``--inception-weights`` path (see
            :func:`~semantichuman_hd.evaluation.inception.resolve_inception_weights`).
        progress: Show progress bars.

    Returns:
        A JSON-ready dict: ``settings`` (everything needed to repeat the run), one entry per metric, and
        ``seconds`` per metric. FID entries hold ``fid``, ``kid_x1000`` and the sample counts.

    Raises:
        ValueError: For unknown metrics, a folder that is not a dataset, bad sizes, or a dataset without
            normal maps when ``fid_normals`` is asked for.
        InceptionWeightsNotFound: When an FID metric is asked for and no weights are available offline
            (before anything is generated).
    """
    if resolution not in RESOLUTIONS:
        raise ValueError(f"`--resolution` must be one of {list(RESOLUTIONS)}, got {resolution!r}.")
    _check_positive("--batch-size", batch_size)
    sizes = sizes or (QUICK_SIZES if quick else FULL_SIZES)
    for name, value in asdict(sizes).items():
        _check_positive(f"--{name.replace('_', '-')}", value)
    dataset_probe = open_dataset(data)
    explicit = metrics is not None
    metrics = check_metrics(metrics if explicit else METRICS)
    notes = []
    if "fid_normals" in metrics and not dataset_probe.with_normals:
        if explicit:
            raise ValueError(f"`--metrics` asks for fid_normals but the dataset {str(data)!r} has no normal maps.")
        metrics.remove("fid_normals")
        notes.append("fid_normals skipped: the dataset has no normal maps.")

    fid_kinds = tuple(FID_METRICS[name] for name in metrics if name in FID_METRICS)
    extractor = None
    if fid_kinds:
        from .inception import InceptionFeatures, resolve_inception_weights

        extractor = InceptionFeatures(resolve_inception_weights(inception_weights)).to(pipe.device)
        message = small_fid_warning(sizes.num)
        if message is not None:
            warnings.warn(message, stacklevel=2)
            notes.append(message)

    size = pipe.config.low_resolution if resolution == "low" else pipe.config.high_resolution
    dataset = open_dataset(data, image_size=size)
    progress_config = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(disable=True)
    results: dict = {
        "settings": {
            "model": pipe.config.get("_name_or_path") or "randomly initialised",
            "data": str(data),
            "dataset_sha256": dataset_digest(dataset),
            "dataset_samples": dataset.num_samples,
            "metrics": metrics,
            "resolution": resolution,
            "picture_size": size,
            "seed": seed,
            "latents": f"person i: torch.Generator().manual_seed(numpy.random.SeedSequence([{seed}, 0, i]).generate_state(1)[0])",
            "poses": f"dataset labels drawn with numpy.random.default_rng({seed})",
            "camera": "the pipeline's fixed camera; people posed with the drawn SMPL parameters and centred",
            "truncation_psi": pipe.config.truncation_psi,
            "composition": pipe.config.composition,
            "sizes": asdict(sizes),
            "quick": quick,
            "mask_threshold": MASK_THRESHOLD,
            "depth_alpha_threshold": DEPTH_ALPHA_THRESHOLD,
            "inception": None if extractor is None else extractor.source,
            "notes": notes,
        },
        "seconds": {},
    }
    try:
        conditions = sample_conditions(dataset, max(sizes.num, sizes.num_pairs, sizes.num_sr, sizes.num_guided), seed)
        if fid_kinds or "part_stats" in metrics:
            _generated_side(pipe, dataset, conditions, metrics, fid_kinds, extractor, sizes, resolution, seed, batch_size, progress, results)
        if "disentanglement" in metrics:
            start = time.perf_counter()
            with _bar(sizes.num_pairs * (NUM_PARTS + 1) * len(COMPOSITIONS), "disentanglement", progress) as bar:
                results["disentanglement"] = disentanglement(pipe, sizes.num_pairs, seed, conditions=conditions, batch_size=batch_size, progress=bar.update)
            results["seconds"]["disentanglement"] = time.perf_counter() - start
        if "sr_consistency" in metrics:
            start = time.perf_counter()
            with _bar(sizes.num_sr, "SR consistency", progress) as bar:
                results["sr_consistency"] = sr_consistency(pipe, sizes.num_sr, seed, conditions=conditions, batch_size=batch_size, progress=bar.update)
            results["seconds"]["sr_consistency"] = time.perf_counter() - start
        if "guided_sampling" in metrics:
            start = time.perf_counter()
            with _bar(sizes.num_guided, "guided vs brute-force SR", progress) as bar:
                results["guided_sampling"] = guided_sampling_fidelity(pipe, sizes.num_guided, seed, conditions=conditions, progress=bar.update)
            results["seconds"]["guided_sampling"] = time.perf_counter() - start
    finally:
        pipe._progress_bar_config = progress_config
    return results


def _generated_side(pipe, dataset, conditions, metrics, fid_kinds, extractor, sizes, resolution, seed, batch_size, progress, results) -> None:
    """Generate ``sizes.num`` people once for FID/KID and the part statistics."""
    start = time.perf_counter()
    features: dict[str, list[torch.Tensor]] = {kind: [] for kind in fid_kinds}
    presence = np.zeros(NUM_PARTS)
    coverage = np.zeros(NUM_PARTS)
    with _bar(sizes.num, "generating", progress) as bar:
        for begin in range(0, sizes.num, batch_size):
            stop = min(begin + batch_size, sizes.num)
            batch = conditions.batch(begin, stop)
            output = pipe(
                latents=person_latents(pipe, seed, range(begin, stop)),
                betas=batch.betas,
                body_pose=batch.body_pose,
                global_orient=batch.global_orient,
                resolution=resolution,
                output_type="pt",
            )
            if "image" in fid_kinds:
                features["image"].append(extractor(output.images))
            if "normals" in fid_kinds:
                features["normals"].append(extractor(output.normals))
            if "face" in fid_kinds:
                features["face"].append(extractor(face_crops(output.images, _generated_head_centres(pipe, batch))))
            labels = label_maps(output.semantic_masks, output.alpha)
            for k in range(NUM_PARTS):
                part = labels == k + 1
                presence[k] += float(part.flatten(1).any(1).sum())
                coverage[k] += float(part.flatten(1).float().mean(1).sum())
            bar.update(stop - begin)
    results["seconds"]["generation"] = time.perf_counter() - start
    if "part_stats" in metrics:
        results["part_stats"] = {
            "generated": {part: {"presence_rate": presence[k] / sizes.num, "mean_coverage": coverage[k] / sizes.num} for k, part in enumerate(PARTS)},
            "dataset": reference_part_stats(dataset),
        }
    if fid_kinds:
        start = time.perf_counter()
        count = dataset.num_samples if sizes.num_real is None else min(sizes.num_real, dataset.num_samples)
        with _bar(count, "real statistics", progress) as bar:
            real = real_features(dataset, extractor, fid_kinds, num=sizes.num_real, batch_size=batch_size, body_model=pipe.body_model, progress=bar.update)
        for name, kind in FID_METRICS.items():
            if kind in fid_kinds:
                results[name] = _fid_entry(torch.cat(features[kind]).numpy(), real[kind], seed)
        results["seconds"]["fid"] = time.perf_counter() - start


# -- the Markdown report ------------------------------------------------------------------------------


def _number(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}"


def _people(count: int) -> str:
    return f"{count} person" if count == 1 else f"{count} people"


def markdown_report(results: dict) -> str:
    """The results of :func:`evaluate` as Markdown tables."""
    settings = results["settings"]
    lines = [
        "# SemanticHuman-HD evaluation",
        "",
        f"Model `{settings['model']}`, data `{settings['data']}` ({settings['dataset_samples']} samples), "
        f"{settings['resolution']} resolution ({settings['picture_size']}²), seed {settings['seed']}, "
        f"truncation ψ = {settings['truncation_psi']}, composition `{settings['composition']}`{' (quick)' if settings['quick'] else ''}.",
    ]
    for note in settings["notes"]:
        lines += ["", f"> {note}"]
    fid_rows = [name for name in FID_METRICS if name in results]
    if fid_rows:
        lines += ["", f"Inception: {settings['inception']}", "", "| metric | FID | KID×1000 | generated | real |", "|---|---|---|---|---|"]
        for name in fid_rows:
            entry = results[name]
            lines.append(
                f"| {name} | {_number(entry['fid'])} | {_number(entry['kid_x1000'])} ± {_number(entry['kid_std_x1000'], 2)} | "
                f"{entry['num_generated']} | {entry['num_real']} |"
            )
    if "part_stats" in results:
        lines += ["", "| part | presence (generated) | presence (dataset) | coverage (generated) | coverage (dataset) |", "|---|---|---|---|---|"]
        stats = results["part_stats"]
        for part in PARTS:
            gen, ref = stats["generated"][part], stats["dataset"][part]
            lines.append(
                f"| {part} | {_number(gen['presence_rate'], 3)} | {_number(ref['presence_rate'], 3)} | "
                f"{_number(gen['mean_coverage'], 3)} | {_number(ref['mean_coverage'], 3)} |"
            )
    if "disentanglement" in results:
        lines += [
            "",
            f"Disentanglement: change when one part's latent is swapped, outside / inside that part's masks (weight ≥ {settings['mask_threshold']}), "
            f"mean (max); depth where both renders have alpha ≥ {settings['depth_alpha_threshold']}.",
            "",
            "| composition | part | image outside | depth outside (m) | normals outside | image inside |",
            "|---|---|---|---|---|---|",
        ]
        for name, entry in results["disentanglement"].items():
            rows = [*((part, values) for part, values in entry["parts"].items()), ("overall", entry["overall"])]
            for part, values in rows:
                cell = lambda side, q: f"{_number(values[side][q]['mean'], 3)} ({_number(values[side][q]['max'], 3)})"  # noqa: E731
                lines.append(f"| {name} | {part} | {cell('outside', 'image')} | {cell('outside', 'depth')} | {cell('outside', 'normals')} | {cell('inside', 'image')} |")
    if "sr_consistency" in results:
        entry = results["sr_consistency"]
        lines += ["", f"SR consistency (down-sampled HR vs LR, {_people(entry['num'])}):", "", "| map | PSNR (dB) | L1 |", "|---|---|---|"]
        for key in ("image", "masks", "normals"):
            lines.append(f"| {key} | {_number(entry[key]['psnr_db'])} | {_number(entry[key]['l1'])} |")
    if "guided_sampling" in results:
        entry = results["guided_sampling"]
        lines += [
            "",
            f"Guided vs brute-force HR render ({_people(entry['num'])}):",
            "",
            "| PSNR (dB) | depth error (m) | alpha L1 | speed-up | speed-up with stage 1 |",
            "|---|---|---|---|---|",
            f"| {_number(entry['psnr_db'])} | {_number(entry['depth_abs_error_m'])} | {_number(entry['alpha_l1'])} | "
            f"{_number(entry['speed_ratio'], 3)}× | {_number(entry['speed_ratio_with_stage1'], 3)}× |",
        ]
    seconds = results.get("seconds", {})
    if seconds:
        lines += ["", "Time: " + ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items()) + "."]
    return "\n".join(lines) + "\n"


__all__ = ["METRICS", "FID_METRICS", "FULL_SIZES", "QUICK_SIZES", "EvaluationSizes", "check_metrics", "evaluate", "markdown_report"]
