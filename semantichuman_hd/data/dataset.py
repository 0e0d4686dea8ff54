"""``SemanticHumanDataset``: a torch ``Dataset`` over a dataset folder of :mod:`semantichuman_hd.data.format`.

Each item is a dict of tensors at one square resolution ``R``:

======================  =====================  ==========================================================
key                     shape / type           content
======================  =====================  ==========================================================
``image``               ``(3, R, R)`` float32  RGB in [−1, 1] (``v / 127.5 − 1``), white background = 1
``segm``                ``(R, R)`` int64       0 = background, ``k + 1`` = part ``k`` of ``PARTS``
``part_masks``          ``(K, R, R)`` float32  one-hot of ``segm`` (all zero on background)
``normals``             ``(3, R, R)`` float32  only with normals: unit normals on the person,
                                               ``(1, 1, 1)`` (white) on background; i.e. ``2·picture − 1``
``camera``              ``(25,)`` float32      cam2world (16, row-major) | normalised intrinsics (9)
``smpl``                ``(86,)`` float32      scale | transl 3 | global_orient 3 | body_pose 69 | betas 10
``cam2world``           ``(4, 4)``             the camera pieces, structured
``intrinsics``          ``(3, 3)``
``scale``               ``()``                 the SMPL pieces, structured
``transl``              ``(3,)``
``global_orient``       ``(3,)``
``body_pose``           ``(69,)``
``betas``               ``(10,)``
``name``                str                    the sample's file name
``mirrored``            bool                   whether this is the mirrored copy
======================  =====================  ==========================================================

Pictures that are not square are centred on a white square first (label background 0), then resized:
images bilinear with antialiasing, label maps nearest-neighbour only, normals averaged over the
foreground and re-normalised. With ``mirror=True`` the dataset doubles: items ``N..2N−1`` are the
mirror images of items ``0..N−1`` with mirrored camera and SMPL fit
(:mod:`semantichuman_hd.data.transforms` derives the geometry).

Every problem raises an error naming the file or field; no sample is ever dropped silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..checks import check_positive_int, renamed_argument
from ..parts import NUM_PARTS, PARTS
from .format import (
    BACKGROUND_LABEL,
    CAMERA_LABEL_DIM,
    IMAGES_DIR,
    INDEX_FILE,
    LABEL_SLICES,
    MAX_LABEL,
    NORMALS_DIR,
    SEGM_DIR,
    WHITE,
    DatasetFormatError,
    read_index,
)
from .transforms import (
    decode_normals,
    mirror_label_vector,
    mirror_normals,
    mirror_pictures,
    pad_to_square,
    resize_image,
    resize_labels,
    resize_normals,
)

WITH_NORMALS_CHOICES: tuple = ("auto", True, False)
"""Allowed values of ``with_normals``."""

LABEL_MODES: tuple[str, ...] = ("L", "P")
"""PIL modes accepted for label maps: 8-bit single channel (grey or palette indices)."""


def read_rgb(path: Path) -> np.ndarray:
    """An image file as ``(H, W, 3) uint8`` RGB; transparency is composited over white.

    Raises:
        FileNotFoundError: If the file is missing.
        DatasetFormatError: If it cannot be decoded or is not an 8-bit picture.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing.")
    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode in ("RGBA", "LA", "P", "PA") or "transparency" in picture.info:
                rgba = picture.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (WHITE, WHITE, WHITE, WHITE))
                return np.array(Image.alpha_composite(white, rgba).convert("RGB"))
            if picture.mode not in ("RGB", "L"):
                raise DatasetFormatError(f"{path}: images must be 8-bit RGB, RGBA or grey, got PIL mode {picture.mode!r}.")
            return np.array(picture.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DatasetFormatError(f"{path} could not be decoded as an image: {error}.") from None


def read_label_map(path: Path) -> np.ndarray:
    """A single-channel 8-bit label map as ``(H, W) uint8`` (palette PNGs give their indices).

    Raises:
        FileNotFoundError: If the file is missing.
        DatasetFormatError: If it cannot be decoded or is not single-channel 8-bit.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing.")
    try:
        with Image.open(path) as picture:
            picture.load()
            if picture.mode not in LABEL_MODES:
                raise DatasetFormatError(
                    f"{path}: label maps must be single-channel 8-bit PNGs (PIL mode 'L' or 'P'), got mode {picture.mode!r}."
                )
            return np.array(picture, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DatasetFormatError(f"{path} could not be decoded as a label map: {error}.") from None


def picture_size(path: Path) -> tuple[int, int]:
    """``(W, H)`` of a picture file, reading only its header."""
    try:
        with Image.open(path) as picture:
            return picture.size
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DatasetFormatError(f"{path} could not be decoded as an image: {error}.") from None


class SemanticHumanDataset(torch.utils.data.Dataset):
    """Images, part label maps, optional normal maps, cameras and SMPL fits of a dataset folder.

    Parameters:
        root: The dataset folder (``dataset.json``, ``images/``, ``segm/``, optional ``normals/``).
        image_size: Side ``R`` of the square items, pixels; None keeps the native size (the padded square
            of the size the index declares, or of the first image when the index declares none).
        mirror: Add the horizontally mirrored copy of every sample (items ``N..2N−1``).
        with_normals: ``"auto"`` (use normals when the index declares them, or, for indexes that do not
            say, when ``normals/`` exists), ``True`` (require them) or ``False`` (ignore them).
        resolution: Deprecated name of ``image_size``.

    Raises:
        FileNotFoundError: If ``dataset.json`` or a listed picture is missing.
        ValueError: For a bad argument or a malformed index (:class:`DatasetFormatError`).
    """

    def __init__(
        self, root: str | os.PathLike, image_size: int | None = None, mirror: bool = False, with_normals="auto", resolution: int | None = None
    ):
        argument = "image_size" if resolution is None else "resolution"  # errors name what the caller passed
        image_size = renamed_argument(image_size, resolution, "image_size", "resolution")
        if image_size is not None:
            check_positive_int(image_size, argument)
        if not (with_normals == "auto" if isinstance(with_normals, str) else isinstance(with_normals, bool)):
            raise ValueError(f"`with_normals` must be one of {list(WITH_NORMALS_CHOICES)}, got {with_normals!r}.")
        self.root = Path(root)
        self.index = read_index(self.root)
        index_path = self.root / INDEX_FILE
        if with_normals == "auto":
            declared = self.index.with_normals
            self.with_normals = declared if declared is not None else (self.root / NORMALS_DIR).is_dir()
        else:
            if with_normals and self.index.with_normals is False:
                raise ValueError(f"`with_normals` is True but {index_path} declares `normals: false`.")
            self.with_normals = bool(with_normals)
        self.mirror = bool(mirror)
        folders = (IMAGES_DIR, SEGM_DIR) + ((NORMALS_DIR,) if self.with_normals else ())
        for name in self.index.names:
            for folder in folders:
                path = self.root / folder / name
                if not path.is_file():
                    raise FileNotFoundError(f"{path} is missing; {index_path} lists sample {name!r}.")
        if self.index.resolution is not None:
            self.native_size = self.index.resolution
        else:
            self.native_size = picture_size(self.root / IMAGES_DIR / self.index.names[0])
        self.image_size = image_size if image_size is not None else max(self.native_size)
        self.labels = torch.from_numpy(self.index.vectors())
        """``(N, 111)`` flat label vectors of the (unmirrored) samples."""

    @property
    def names(self) -> list[str]:
        """Sample names, in index order."""
        return self.index.names

    @property
    def num_samples(self) -> int:
        """N, the number of samples in the folder (without mirrored copies)."""
        return len(self.index.names)

    def __len__(self) -> int:
        return self.num_samples * (2 if self.mirror else 1)

    def __getitem__(self, index: int) -> dict:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices must be integers, got {type(index).__name__}.")
        length = len(self)
        if not -length <= index < length:
            raise IndexError(f"index {index} is out of range for a dataset of {length} items.")
        index = int(index) % length
        return self.load(index % self.num_samples, mirrored=index >= self.num_samples)

    def extras(self, index: int) -> dict:
        """The free ``extras`` stored with sample ``index`` (empty if none)."""
        return dict(self.index.labels[index].get("extras", {}))

    def read_pictures(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index``'s pictures as stored, checked: ``image (H, W, 3)``, ``segm (H, W)`` and
        ``normals (H, W, 3)`` (if used), all uint8.

        Raises:
            DatasetFormatError: For undecodable files, mismatched sizes, a size other than the declared
                resolution, or label values above :data:`MAX_LABEL`.
        """
        name = self.index.names[index]
        image_path, segm_path = self.root / IMAGES_DIR / name, self.root / SEGM_DIR / name
        image = read_rgb(image_path)
        segm = read_label_map(segm_path)
        if segm.shape != image.shape[:2]:
            raise DatasetFormatError(
                f"{segm_path} is {segm.shape[1]} × {segm.shape[0]} (W × H) but its image {image_path} is "
                f"{image.shape[1]} × {image.shape[0]}; they must match."
            )
        if self.index.resolution is not None and (image.shape[1], image.shape[0]) != self.index.resolution:
            raise DatasetFormatError(
                f"{image_path} is {image.shape[1]} × {image.shape[0]} (W × H) but {self.root / INDEX_FILE} declares "
                f"resolution {self.index.resolution[0]} × {self.index.resolution[1]}."
            )
        top = int(segm.max(initial=0))
        if top > MAX_LABEL:
            raise DatasetFormatError(
                f"{segm_path} holds label value {top}; allowed are 0 (background) to {MAX_LABEL} "
                f"(k + 1 for part k of {list(PARTS)})."
            )
        pictures = {"image": image, "segm": segm}
        if self.with_normals:
            normals_path = self.root / NORMALS_DIR / name
            normals = read_rgb(normals_path)
            if normals.shape != image.shape:
                raise DatasetFormatError(
                    f"{normals_path} is {normals.shape[1]} × {normals.shape[0]} (W × H) but its image {image_path} is "
                    f"{image.shape[1]} × {image.shape[0]}; they must match."
                )
            pictures["normals"] = normals
        return pictures

    def load(self, index: int, mirrored: bool = False) -> dict:
        """Item of sample ``index`` (``0 ≤ index < N``), mirrored or not (see the module docstring)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"sample index {index} is out of range for {self.num_samples} samples.")
        pictures = self.read_pictures(index)
        size = self.image_size
        segm_native = pad_to_square(pictures["segm"], BACKGROUND_LABEL)
        image_native = pad_to_square(pictures["image"], WHITE)
        image = torch.from_numpy(np.ascontiguousarray(image_native)).permute(2, 0, 1).to(torch.float32) / (WHITE / 2) - 1.0
        image = resize_image(image, size).clamp(-1.0, 1.0)
        segm_full = torch.from_numpy(segm_native.astype(np.int64))
        segm = resize_labels(segm_full, size)
        item = {"image": image, "segm": segm}
        if self.with_normals:
            foreground = segm_full != BACKGROUND_LABEL
            normals = decode_normals(pad_to_square(pictures["normals"], WHITE), foreground.numpy())
            item["normals"] = resize_normals(normals, foreground, size, segm != BACKGROUND_LABEL)
        label = self.labels[index]
        if mirrored:
            foreground = item["segm"] != BACKGROUND_LABEL
            item["image"] = mirror_pictures(item["image"])
            item["segm"] = mirror_pictures(item["segm"])
            if self.with_normals:
                item["normals"] = mirror_normals(item["normals"], foreground)
            label = mirror_label_vector(label)
        item["image"] = item["image"].contiguous()
        item["segm"] = item["segm"].contiguous()
        item["part_masks"] = torch.stack([item["segm"] == k + 1 for k in range(NUM_PARTS)]).to(torch.float32)
        item["camera"] = label[:CAMERA_LABEL_DIM].clone()
        item["smpl"] = label[CAMERA_LABEL_DIM:].clone()
        item["cam2world"] = label[LABEL_SLICES["cam2world"]].reshape(4, 4).clone()
        item["intrinsics"] = label[LABEL_SLICES["intrinsics"]].reshape(3, 3).clone()
        item["scale"] = label[LABEL_SLICES["scale"]].reshape(()).clone()
        for key in ("transl", "global_orient", "body_pose", "betas"):
            item[key] = label[LABEL_SLICES[key]].clone()
        item["name"] = self.index.names[index]
        item["mirrored"] = bool(mirrored)
        return item

    @property
    def resolution(self) -> int:
        """Deprecated name of :attr:`image_size`."""
        return self.image_size

    def validate(self) -> None:
        """Read every sample's pictures once and raise at the first problem."""
        for index in range(self.num_samples):
            self.read_pictures(index)

    def stats(self) -> dict:
        """Per-part presence and coverage (:func:`dataset_stats`)."""
        return dataset_stats(self.root)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, samples={self.num_samples}, image_size={self.image_size}, "
            f"mirror={self.mirror}, with_normals={self.with_normals})"
        )


def dataset_stats(root: str | os.PathLike) -> dict:
    """Per-part label statistics of a dataset folder, from its stored label maps.

    Returns:
        ``{"num_images": N, "parts": {part: {"presence_rate", "mean_coverage",
        "mean_coverage_when_present"}}, "background_coverage": …}`` where presence rate is the fraction
        of images in which the part has at least one pixel, mean coverage the part's fraction of the
        image pixels averaged over all images, and mean coverage when present the same average over
        the images that show the part (None if none does). Fractions are of the stored picture (before
        any padding to square).
    """
    index = read_index(root)
    counts = np.zeros((len(index.names), NUM_PARTS + 1), dtype=np.float64)
    for row, name in enumerate(index.names):
        path = Path(root) / SEGM_DIR / name
        segm = read_label_map(path)
        top = int(segm.max(initial=0))
        if top > MAX_LABEL:
            raise DatasetFormatError(f"{path} holds label value {top}; allowed are 0 (background) to {MAX_LABEL}.")
        counts[row] = np.bincount(segm.reshape(-1), minlength=NUM_PARTS + 1) / segm.size
    present = counts[:, 1:] > 0
    parts = {}
    for k, part in enumerate(PARTS):
        shown = present[:, k]
        parts[part] = {
            "presence_rate": float(shown.mean()),
            "mean_coverage": float(counts[:, k + 1].mean()),
            "mean_coverage_when_present": float(counts[shown, k + 1].mean()) if shown.any() else None,
        }
    return {"num_images": len(index.names), "parts": parts, "background_coverage": float(counts[:, 0].mean())}
