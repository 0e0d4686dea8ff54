"""The real side of the evaluation: the dataset folder, the poses and cameras drawn from its labels,
its Inception features (cached by dataset, resolution and weights) and its part statistics."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from ..data.dataset import SemanticHumanDataset, dataset_stats
from ..data.format import INDEX_FILE, LABEL_SLICES
from ..io import atomic_path
from ..parts import PARTS
from ..paths import user_cache_dir
from ..rendering.cameras import Cameras
from .pictures import FACE_CROP_FRACTION, HEAD_JOINT, face_crops

FID_KINDS: tuple[str, ...] = ("image", "normals", "face")
"""Pictures FID is measured on: the RGB image, the normal map, and face crops of the image."""

STATS_CACHE_SUBDIR: str = "fid_stats"
"""Folder of the user cache holding real-set features."""

STATS_CACHE_VERSION: int = 1
"""Bumped when the way real features are computed changes (old cache entries are then ignored)."""


@dataclass
class Conditions:
    """Poses and cameras of the generated people, drawn from the dataset's labels.

    Attributes:
        indices: ``(N,)`` dataset sample of each person (drawn with replacement when N exceeds the dataset).
        betas, body_pose, global_orient: ``(N, 10)``, ``(N, 69)``, ``(N, 3)`` SMPL parameters.
        cam2world, intrinsics: ``(N, 4, 4)``, ``(N, 3, 3)`` the labels' cameras.
    """

    indices: torch.Tensor
    betas: torch.Tensor
    body_pose: torch.Tensor
    global_orient: torch.Tensor
    cam2world: torch.Tensor
    intrinsics: torch.Tensor

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def batch(self, start: int, stop: int) -> "Conditions":
        return Conditions(*(getattr(self, name)[start:stop] for name in self.__dataclass_fields__))


def open_dataset(root: str | os.PathLike, image_size: int | None = None, argument: str = "--data") -> SemanticHumanDataset:
    """The dataset folder ``root``, or a ``ValueError`` naming ``argument`` and the value if it is not one."""
    try:
        return SemanticHumanDataset(root, image_size=image_size)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"`{argument}` {str(root)!r} is not a dataset folder (docs/dataset_format.md): {error}") from error


def dataset_digest(dataset: SemanticHumanDataset) -> str:
    """SHA-256 of the dataset's ``dataset.json`` (its identity in cache keys)."""
    return hashlib.sha256((dataset.root / INDEX_FILE).read_bytes()).hexdigest()


def sample_conditions(dataset: SemanticHumanDataset, num: int, seed: int) -> Conditions:
    """``num`` labels of ``dataset`` drawn at random (seeded; without replacement while the dataset is
    large enough, as the paper draws random dataset poses)."""
    rng = np.random.default_rng(seed)
    replace = num > dataset.num_samples
    indices = torch.from_numpy(rng.choice(dataset.num_samples, size=num, replace=replace)).long()
    labels = dataset.labels[indices].float()
    field = lambda name: labels[:, LABEL_SLICES[name]]  # noqa: E731
    return Conditions(
        indices=indices,
        betas=field("betas"),
        body_pose=field("body_pose"),
        global_orient=field("global_orient"),
        cam2world=field("cam2world").reshape(-1, 4, 4),
        intrinsics=field("intrinsics").reshape(-1, 3, 3),
    )


def real_head_centres(body_model, labels: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` normalised pixel position of the head joint of dataset labels ``(B, 111)``: the posed
    body ``scale · (SMPL(betas, pose) + transl)`` seen by the label's camera."""
    labels = labels.float()
    field = lambda name: labels[:, LABEL_SLICES[name]]  # noqa: E731
    with torch.no_grad():
        joints = body_model(betas=field("betas"), body_pose=field("body_pose"), global_orient=field("global_orient")).joints
    head = field("scale") * (joints[:, HEAD_JOINT] + field("transl"))
    cameras = Cameras(field("cam2world").reshape(-1, 4, 4), field("intrinsics").reshape(-1, 3, 3))
    pixels, _ = cameras.project(head.unsqueeze(1))
    return pixels[:, 0]


def _item_pictures(item: dict) -> dict[str, torch.Tensor]:
    pictures = {"image": (item["image"] + 1) / 2}
    if "normals" in item:
        pictures["normals"] = (item["normals"] + 1) / 2
    return pictures


def real_features(
    dataset: SemanticHumanDataset,
    extractor,
    kinds: tuple[str, ...],
    num: int | None = None,
    batch_size: int = 8,
    body_model=None,
    progress=None,
    use_cache: bool = True,
) -> dict[str, np.ndarray]:
    """Inception features ``{kind: (N, 2048)}`` of the first ``num`` (default all) dataset samples at the
    dataset's ``image_size``, for ``kinds`` of :data:`FID_KINDS` (``normals`` needs a dataset with
    normals; ``face`` needs ``body_model``). Cached in ``$SEMANTICHUMAN_CACHE/fid_stats/`` by dataset
    index, resolution, count, kinds and weights.

    ``progress`` (optional) is called with the number of samples done after each batch.
    """
    unknown = [kind for kind in kinds if kind not in FID_KINDS]
    if unknown:
        raise ValueError(f"`kinds` must be among {list(FID_KINDS)}, got {unknown}.")
    if "normals" in kinds and not dataset.with_normals:
        raise ValueError(f"the dataset {str(dataset.root)!r} has no normal maps: FID on normals cannot be measured.")
    if "face" in kinds and body_model is None:
        raise ValueError("`body_model` is needed to locate the faces of the real pictures.")
    count = dataset.num_samples if num is None else min(num, dataset.num_samples)
    key = json.dumps(
        [STATS_CACHE_VERSION, dataset_digest(dataset), dataset.image_size, count, sorted(kinds), extractor.digest, FACE_CROP_FRACTION],
    )
    path = user_cache_dir() / STATS_CACHE_SUBDIR / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.safetensors"
    if use_cache and path.is_file():
        from safetensors.numpy import load_file

        cached = load_file(str(path))
        if progress is not None:
            progress(count)
        return {kind: cached[kind].astype(np.float64) for kind in kinds}
    features: dict[str, list[torch.Tensor]] = {kind: [] for kind in kinds}
    for start in range(0, count, batch_size):
        items = [dataset.load(i) for i in range(start, min(start + batch_size, count))]
        pictures = [_item_pictures(item) for item in items]
        if "image" in kinds:
            features["image"].append(extractor(torch.stack([p["image"] for p in pictures])))
        if "normals" in kinds:
            features["normals"].append(extractor(torch.stack([p["normals"] for p in pictures])))
        if "face" in kinds:
            labels = dataset.labels[start : start + len(items)]
            centres = real_head_centres(body_model, labels)
            features["face"].append(extractor(face_crops(torch.stack([p["image"] for p in pictures]), centres)))
        if progress is not None:
            progress(len(items))
    result = {kind: torch.cat(chunks).numpy() for kind, chunks in features.items()}
    if use_cache:
        from safetensors.numpy import save_file

        with atomic_path(path) as tmp:
            save_file({kind: array.astype(np.float32) for kind, array in result.items()}, str(tmp), metadata={"key": key})
    return result


def reference_part_stats(dataset: SemanticHumanDataset) -> dict:
    """The dataset's per-part presence rate and mean coverage (``preview-dataset --stats``), with the
    coverage converted to the white-padded square frame the generated pictures have."""
    stats = dataset_stats(dataset.root)
    width, height = dataset.native_size
    to_square = (width * height) / max(width, height) ** 2
    return {
        part: {
            "presence_rate": stats["parts"][part]["presence_rate"],
            "mean_coverage": stats["parts"][part]["mean_coverage"] * to_square,
        }
        for part in PARTS
    }
