"""The SemanticHuman-HD training-data format: constants, label layouts, the writer and the index reader.

A dataset is one folder (documented in ``docs/dataset_format.md``)::

    DATASET/
      dataset.json     the index: one label (camera + SMPL fit) per image
      images/NAME.png  RGB images, white background
      segm/NAME.png    uint8 label maps: 0 = background, k + 1 = part k of PARTS
      normals/NAME.png optional normal maps, (n + 1)/2 · 255, background white

``dataset.json``::

    {"format": "semantichuman-hd-dataset", "version": 1, "parts": [...PARTS],
     "resolution": R or [W, H], "normals": true | false,
     "labels": [[NAME, {"camera": {"cam2world": 4×4, "intrinsics": 3×3},
                        "smpl": {"scale": s, "transl": [3], "global_orient": [3],
                                 "body_pose": [69], "betas": [10]},
                        "extras": {...optional, free JSON...}}], ...]}

The reader also accepts AG3D's label layouts: ``[NAME, [111 floats]]`` (flat) and
``[NAME, [[25 floats], [86 floats]]]`` (camera and SMPL halves), with the flat layout
``cam2world (16, row-major) | intrinsics (9, row-major) | scale | transl (3) | global_orient (3) |
body_pose (69) | betas (10)``. Posed SMPL vertices are ``scale · (SMPL(betas, pose) + transl)``.

Writing is split so that worker processes can write the pictures and the parent the index:
:func:`write_sample` writes one sample's PNGs and returns its index entry, :func:`write_index`
writes ``dataset.json`` atomically; :class:`DatasetWriter` wraps both for a single process.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from ..body.smpl_format import BODY_POSE_DIM, GLOBAL_ORIENT_DIM, NUM_BETAS
from ..io import atomic_path
from ..parts import NUM_PARTS, PARTS

FORMAT_NAME: str = "semantichuman-hd-dataset"
"""Value of the ``"format"`` field of ``dataset.json``."""

FORMAT_VERSION: int = 1
"""Version of the format this code writes (and the newest it reads)."""

INDEX_FILE: str = "dataset.json"
"""Name of the index file in the dataset folder."""

IMAGES_DIR: str = "images"
"""Sub-folder of the RGB images."""

SEGM_DIR: str = "segm"
"""Sub-folder of the label maps."""

NORMALS_DIR: str = "normals"
"""Sub-folder of the optional normal maps."""

IMAGE_SUFFIX: str = ".png"
"""Every picture of the format is a PNG."""

BACKGROUND_LABEL: int = 0
"""Label-map value of background pixels."""

MAX_LABEL: int = NUM_PARTS
"""Largest valid label-map value: part ``k`` of :data:`~semantichuman_hd.parts.PARTS` is ``k + 1``."""

WHITE: int = 255
"""Value of every channel of background pixels in images and normal maps."""

# ---- Label vector layout (AG3D / EG3D conditioning labels) ----------------------------------------

CAM2WORLD_DIM: int = 16
"""Row-major 4 × 4 camera-to-world matrix."""

INTRINSICS_DIM: int = 9
"""Row-major 3 × 3 normalised intrinsics."""

CAMERA_LABEL_DIM: int = CAM2WORLD_DIM + INTRINSICS_DIM
"""Camera part of a label vector (25)."""

SMPL_SCALE_DIM: int = 1
"""Uniform scale of the posed body."""

TRANSL_DIM: int = 3
"""SMPL translation."""

SMPL_LABEL_DIM: int = SMPL_SCALE_DIM + TRANSL_DIM + GLOBAL_ORIENT_DIM + BODY_POSE_DIM + NUM_BETAS
"""SMPL part of a label vector (86)."""

LABEL_DIM: int = CAMERA_LABEL_DIM + SMPL_LABEL_DIM
"""A whole label vector (111)."""

SMPL_FIELDS: tuple[tuple[str, int], ...] = (
    ("scale", SMPL_SCALE_DIM),
    ("transl", TRANSL_DIM),
    ("global_orient", GLOBAL_ORIENT_DIM),
    ("body_pose", BODY_POSE_DIM),
    ("betas", NUM_BETAS),
)
"""The SMPL fields of a label, in label-vector order, with their sizes."""

LABEL_SLICES: dict[str, slice] = {"cam2world": slice(0, CAM2WORLD_DIM), "intrinsics": slice(CAM2WORLD_DIM, CAMERA_LABEL_DIM)}
"""Where each field sits in a 111-float label vector."""
_start = CAMERA_LABEL_DIM
for _name, _size in SMPL_FIELDS:
    LABEL_SLICES[_name] = slice(_start, _start + _size)
    _start += _size
del _start, _name, _size

LABEL_KEYS: tuple[str, ...] = ("camera", "smpl", "extras")
"""Keys allowed in a structured label (``extras`` is optional free JSON)."""

HOMOGENEOUS_TOLERANCE: float = 1e-4
"""How far the last rows of cam2world / intrinsics may be from ``[0, 0, 0, 1]`` / ``[0, 0, 1]``."""

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_\-+=.,()@]+$")


class DatasetFormatError(ValueError):
    """A dataset folder or one of its files does not follow the format (a ``ValueError``)."""


# ---- Labels -------------------------------------------------------------------------------------


def _array(value, name: str, where: str, size: int) -> np.ndarray:
    try:
        array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DatasetFormatError(f"{where}: `{name}` must be {size} numbers, got {value!r} ({error}).") from None
    if array.size != size:
        raise DatasetFormatError(f"{where}: `{name}` must hold {size} numbers, got shape {tuple(array.shape)}.")
    array = array.reshape(-1)
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array)).tolist()
        raise DatasetFormatError(f"{where}: `{name}` holds non-finite values (NaN/inf) at positions {bad}.")
    return array


def validate_label(label: Mapping[str, Any], where: str = "label") -> dict:
    """Check a structured label and return it normalised: lists of floats, ``extras`` kept.

    Parameters:
        label: ``{"camera": {"cam2world", "intrinsics"}, "smpl": {"scale", "transl",
            "global_orient", "body_pose", "betas"}, "extras"?: {...}}``; arrays, tensors or nested
            lists. A missing ``smpl.scale`` means 1.
        where: Names the label in error messages (a file and a sample name).

    Raises:
        DatasetFormatError: Naming the field, the value and what is allowed.
    """
    if not isinstance(label, Mapping):
        raise DatasetFormatError(f"{where}: a label must be a JSON object with keys {list(LABEL_KEYS[:2])}, got {type(label).__name__}.")
    unknown = sorted(set(label) - set(LABEL_KEYS))
    if unknown:
        raise DatasetFormatError(f"{where}: unknown label keys {unknown}; allowed are {list(LABEL_KEYS)}.")
    for key in ("camera", "smpl"):
        if not isinstance(label.get(key), Mapping):
            raise DatasetFormatError(f"{where}: `{key}` must be a JSON object, got {label.get(key)!r}.")
    camera, smpl = label["camera"], label["smpl"]
    unknown = sorted(set(camera) - {"cam2world", "intrinsics"})
    if unknown:
        raise DatasetFormatError(f"{where}: unknown camera keys {unknown}; allowed are ['cam2world', 'intrinsics'].")
    unknown = sorted(set(smpl) - {name for name, _ in SMPL_FIELDS})
    if unknown:
        raise DatasetFormatError(f"{where}: unknown smpl keys {unknown}; allowed are {[n for n, _ in SMPL_FIELDS]}.")
    for key in ("cam2world", "intrinsics"):
        if key not in camera:
            raise DatasetFormatError(f"{where}: `camera.{key}` is missing.")
    cam2world = _array(camera["cam2world"], "camera.cam2world", where, CAM2WORLD_DIM).reshape(4, 4)
    intrinsics = _array(camera["intrinsics"], "camera.intrinsics", where, INTRINSICS_DIM).reshape(3, 3)
    if np.abs(cam2world[3] - [0, 0, 0, 1]).max() > HOMOGENEOUS_TOLERANCE:
        raise DatasetFormatError(
            f"{where}: `camera.cam2world` must end with the row [0, 0, 0, 1] (a 4 × 4 rigid transform, row-major), "
            f"got {cam2world[3].tolist()}."
        )
    if np.abs(intrinsics[2] - [0, 0, 1]).max() > HOMOGENEOUS_TOLERANCE:
        raise DatasetFormatError(
            f"{where}: `camera.intrinsics` must end with the row [0, 0, 1] (row-major 3 × 3), got {intrinsics[2].tolist()}."
        )
    if intrinsics[0, 0] <= 0 or intrinsics[1, 1] <= 0:
        raise DatasetFormatError(
            f"{where}: `camera.intrinsics` focal lengths must be positive, got fx = {intrinsics[0, 0]}, fy = {intrinsics[1, 1]}."
        )
    out_smpl = {}
    for name, size in SMPL_FIELDS:
        if name not in smpl:
            if name == "scale":
                out_smpl[name] = 1.0
                continue
            raise DatasetFormatError(f"{where}: `smpl.{name}` ({size} numbers) is missing.")
        values = _array(smpl[name], f"smpl.{name}", where, size)
        out_smpl[name] = float(values[0]) if name == "scale" else values.tolist()
    if out_smpl["scale"] <= 0:
        raise DatasetFormatError(f"{where}: `smpl.scale` must be positive, got {out_smpl['scale']}.")
    result = {
        "camera": {"cam2world": cam2world.tolist(), "intrinsics": intrinsics.tolist()},
        "smpl": out_smpl,
    }
    if "extras" in label and label["extras"] is not None:
        extras = label["extras"]
        if not isinstance(extras, Mapping):
            raise DatasetFormatError(f"{where}: `extras` must be a JSON object, got {type(extras).__name__}.")
        try:
            json.dumps(extras)
        except (TypeError, ValueError) as error:
            raise DatasetFormatError(f"{where}: `extras` must be JSON-serialisable ({error}).") from None
        result["extras"] = dict(extras)
    return result


def make_label(camera, smpl, extras: Mapping[str, Any] | None = None, where: str = "label") -> dict:
    """A validated structured label from a camera and a SMPL fit.

    Parameters:
        camera: ``{"cam2world": (4, 4), "intrinsics": (3, 3)}`` or a flat ``(25,)`` camera vector.
        smpl: ``{"scale"?, "transl", "global_orient", "body_pose", "betas"}`` or a flat ``(86,)`` vector.
        extras: Optional free JSON stored with the label (e.g. a garment recipe, the source file).
    """
    if not isinstance(camera, Mapping):
        vector = _array(camera, "camera", where, CAMERA_LABEL_DIM)
        camera = {"cam2world": vector[LABEL_SLICES["cam2world"]], "intrinsics": vector[LABEL_SLICES["intrinsics"]]}
    if not isinstance(smpl, Mapping):
        vector = _array(smpl, "smpl", where, SMPL_LABEL_DIM)
        smpl = {name: vector[LABEL_SLICES[name].start - CAMERA_LABEL_DIM : LABEL_SLICES[name].stop - CAMERA_LABEL_DIM] for name, _ in SMPL_FIELDS}
    label = {"camera": camera, "smpl": smpl}
    if extras is not None:
        label["extras"] = extras
    return validate_label(label, where)


def label_to_vector(label: Mapping[str, Any]) -> np.ndarray:
    """The flat AG3D label vector ``(111,) float32`` of a structured label (layout in :data:`LABEL_SLICES`)."""
    label = validate_label(label)
    vector = np.empty(LABEL_DIM, dtype=np.float64)
    vector[LABEL_SLICES["cam2world"]] = np.asarray(label["camera"]["cam2world"]).reshape(-1)
    vector[LABEL_SLICES["intrinsics"]] = np.asarray(label["camera"]["intrinsics"]).reshape(-1)
    for name, _ in SMPL_FIELDS:
        vector[LABEL_SLICES[name]] = np.asarray(label["smpl"][name], dtype=np.float64).reshape(-1)
    return vector.astype(np.float32)


def vector_to_label(vector, where: str = "label vector") -> dict:
    """The structured label of a flat AG3D label vector ``(111,)``.

    Raises:
        DatasetFormatError: If the vector does not hold 111 finite numbers or is not a valid camera.
    """
    vector = _array(vector, "label", where, LABEL_DIM)
    return make_label(vector[:CAMERA_LABEL_DIM], vector[CAMERA_LABEL_DIM:], where=where)


def parse_label(raw, where: str = "label") -> dict:
    """A structured label from any accepted layout: structured object, flat AG3D vector (111 numbers)
    or AG3D's pair ``[[25 camera numbers], [86 SMPL numbers]]``.

    Raises:
        DatasetFormatError: Naming ``where``, the layout found and the layouts allowed.
    """
    if isinstance(raw, Mapping):
        return validate_label(raw, where)
    if isinstance(raw, (list, tuple)):
        if len(raw) == 2 and all(isinstance(half, (list, tuple)) for half in raw):
            camera, smpl = raw
            if len(camera) != CAMERA_LABEL_DIM or len(smpl) != SMPL_LABEL_DIM:
                raise DatasetFormatError(
                    f"{where}: a [camera, smpl] label pair must hold {CAMERA_LABEL_DIM} and {SMPL_LABEL_DIM} numbers, "
                    f"got {len(camera)} and {len(smpl)}."
                )
            return make_label(camera, smpl, where=where)
        if len(raw) != LABEL_DIM:
            raise DatasetFormatError(
                f"{where}: a flat label vector must hold {LABEL_DIM} numbers ({CAMERA_LABEL_DIM} camera + "
                f"{SMPL_LABEL_DIM} SMPL), got {len(raw)}."
            )
        for value in raw:
            if value is None or isinstance(value, (bool, str)):
                raise DatasetFormatError(f"{where}: a flat label vector must hold numbers only, got {value!r}.")
        return vector_to_label(raw, where)
    raise DatasetFormatError(
        f"{where}: a label must be an object {{camera, smpl}}, a list of {LABEL_DIM} numbers or a pair "
        f"[[{CAMERA_LABEL_DIM} numbers], [{SMPL_LABEL_DIM} numbers]], got {type(raw).__name__}."
    )


# ---- Names and pictures -------------------------------------------------------------------------


def check_sample_name(name: str) -> str:
    """Check a sample name (the PNG file name used in every sub-folder) and return it.

    Raises:
        DatasetFormatError: Unless ``name`` is a plain file name (letters, digits, ``_-+=.,()@``, no
            folder) ending in ``.png``.
    """
    if not isinstance(name, str) or not name.endswith(IMAGE_SUFFIX) or name.startswith(".") or not _NAME_PATTERN.match(name):
        raise DatasetFormatError(
            f"sample name must be a plain file name ending in {IMAGE_SUFFIX!r} (letters, digits and _-+=.,()@, no "
            f"folders, not starting with '.'), got {name!r}."
        )
    return name


def normalize_resolution(resolution, argument: str = "resolution") -> tuple[int, int]:
    """``R`` or ``[W, H]`` as ``(W, H)``.

    Raises:
        DatasetFormatError: Unless it is a positive integer or a pair of positive integers.
    """
    def positive(value) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0

    if positive(resolution):
        return int(resolution), int(resolution)
    if isinstance(resolution, (list, tuple)) and len(resolution) == 2 and all(positive(v) for v in resolution):
        return int(resolution[0]), int(resolution[1])
    raise DatasetFormatError(f"`{argument}` must be a positive integer R or a pair [W, H] of positive integers, got {resolution!r}.")


def encode_normals(normals: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """Normal vectors ``(H, W, 3)`` in [−1, 1] → PNG values ``(H, W, 3) uint8``: ``(n + 1)/2 · 255``
    on ``foreground (H, W)``, white elsewhere."""
    encoded = np.clip(np.rint((np.asarray(normals, dtype=np.float64) + 1.0) * 0.5 * WHITE), 0, WHITE).astype(np.uint8)
    encoded[~np.asarray(foreground, dtype=bool)] = WHITE
    return encoded


def _check_picture(array, name: str, shape: tuple[int, ...], where: str, dtype=np.uint8) -> np.ndarray:
    array = np.asarray(array.detach().cpu() if hasattr(array, "detach") else array)
    if array.shape != shape:
        raise DatasetFormatError(f"{where}: `{name}` must have shape {shape}, got {tuple(array.shape)}.")
    if array.dtype != dtype:
        raise DatasetFormatError(f"{where}: `{name}` must be {np.dtype(dtype).name}, got {array.dtype}.")
    return array


def write_sample(
    out_dir: str | os.PathLike,
    name: str,
    image,
    segm,
    camera,
    smpl,
    normals=None,
    extras: Mapping[str, Any] | None = None,
    resolution=None,
) -> list:
    """Write one sample's pictures into a dataset folder and return its index entry ``[name, label]``.

    Safe to call from worker processes (each writes its own files atomically); the parent gathers the
    returned entries and calls :func:`write_index`.

    Parameters:
        out_dir: The dataset folder.
        name: The file name shared by the sample's pictures, e.g. ``"000123.png"``.
        image: ``(H, W, 3) uint8`` RGB, white background.
        segm: ``(H, W) uint8`` label map, 0 = background, ``k + 1`` = part ``k`` of ``PARTS``.
        camera: ``{"cam2world": (4, 4), "intrinsics": (3, 3)}`` (normalised intrinsics) or ``(25,)``.
        smpl: ``{"scale"?, "transl", "global_orient", "body_pose", "betas"}`` or ``(86,)``.
        normals: Optional ``(H, W, 3)``: ``uint8`` already encoded, or floats in [−1, 1] (unit normals;
            encoded here with white wherever ``segm`` is background).
        extras: Optional free JSON stored in the label.
        resolution: Optional ``R`` or ``(W, H)`` the pictures must have.

    Returns:
        ``[name, label]``, the JSON-ready index entry.

    Raises:
        DatasetFormatError: For a bad name, shape, dtype, label value or label.
    """
    name = check_sample_name(name)
    where = f"sample {name!r}"
    segm = np.asarray(segm.detach().cpu() if hasattr(segm, "detach") else segm)
    if segm.ndim != 2:
        raise DatasetFormatError(f"{where}: `segm` must have shape (H, W), got {tuple(segm.shape)}.")
    height, width = segm.shape
    if resolution is not None:
        expected = normalize_resolution(resolution)
        if (width, height) != expected:
            raise DatasetFormatError(f"{where}: pictures must be {expected[0]} × {expected[1]} (W × H), got {width} × {height}.")
    segm = _check_picture(segm, "segm", (height, width), where)
    if segm.max(initial=0) > MAX_LABEL:
        raise DatasetFormatError(f"{where}: `segm` values must be 0..{MAX_LABEL} (0 = background, k + 1 = part k), got {int(segm.max())}.")
    image = _check_picture(image, "image", (height, width, 3), where)
    label = make_label(camera, smpl, extras, where=where)
    if normals is not None:
        normals = np.asarray(normals.detach().cpu() if hasattr(normals, "detach") else normals)
        if normals.shape != (height, width, 3):
            raise DatasetFormatError(f"{where}: `normals` must have shape {(height, width, 3)}, got {tuple(normals.shape)}.")
        if normals.dtype != np.uint8:
            if not np.issubdtype(normals.dtype, np.floating):
                raise DatasetFormatError(f"{where}: `normals` must be uint8 (encoded) or floats in [-1, 1], got {normals.dtype}.")
            normals = encode_normals(normals, segm != BACKGROUND_LABEL)
    root = Path(out_dir)
    pictures = [(IMAGES_DIR, image), (SEGM_DIR, segm)] + ([(NORMALS_DIR, normals)] if normals is not None else [])
    for folder, array in pictures:
        target = root / folder / name
        with atomic_path(target) as tmp:
            Image.fromarray(array).save(tmp, format="PNG")
    return [name, label]


def write_index(
    out_dir: str | os.PathLike,
    entries: Iterable[Sequence],
    resolution,
    with_normals: bool,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``dataset.json`` atomically from index entries returned by :func:`write_sample`.

    Parameters:
        out_dir: The dataset folder.
        entries: ``[name, label]`` pairs; written in the order given.
        resolution: ``R`` or ``(W, H)`` of every picture.
        with_normals: Whether every sample has a normal map (the reader then expects them).
        info: Optional free JSON about the whole dataset (source, generator settings, …).

    Raises:
        DatasetFormatError: For duplicate names, a bad entry, or a listed picture that is missing.

    Returns:
        The path of ``dataset.json``.
    """
    root = Path(out_dir)
    width, height = normalize_resolution(resolution)
    labels, seen = [], set()
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise DatasetFormatError(f"index entries must be [name, label] pairs, got {entry!r}.")
        name, label = entry
        name = check_sample_name(name)
        if name in seen:
            raise DatasetFormatError(f"sample name {name!r} appears twice in the index.")
        seen.add(name)
        folders = (IMAGES_DIR, SEGM_DIR) + ((NORMALS_DIR,) if with_normals else ())
        for folder in folders:
            if not (root / folder / name).is_file():
                raise FileNotFoundError(f"index entry {name!r}: {root / folder / name} was not written.")
        labels.append([name, validate_label(label, f"sample {name!r}")])
    if not labels:
        raise DatasetFormatError("a dataset needs at least one sample; got no index entries.")
    index = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "parts": list(PARTS),
        "resolution": width if width == height else [width, height],
        "normals": bool(with_normals),
        "labels": labels,
    }
    if info is not None:
        index["info"] = dict(info)
    path = root / INDEX_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(index, indent=None, separators=(",", ":")) + "\n")
    return path


class DatasetWriter:
    """Write a dataset folder sample by sample, then the index on :meth:`close`.

    Parameters:
        out_dir: The dataset folder (created).
        resolution: ``R`` or ``(W, H)`` of every picture.
        with_normals: Whether every sample comes with a normal map.
        overwrite: Allow writing into a folder that already holds a ``dataset.json``.
        info: Optional free JSON about the whole dataset, stored in the index.

    Use as a context manager: the index is written when the block ends without an exception::

        with DatasetWriter("out", 256) as writer:
            writer.add("000000.png", image, segm, camera, smpl)

    Raises:
        DatasetFormatError: For a bad resolution, an existing index without ``overwrite``, or bad samples.
    """

    def __init__(self, out_dir: str | os.PathLike, resolution, with_normals: bool = False, overwrite: bool = False, info=None):
        self.out_dir = Path(out_dir)
        self.resolution = normalize_resolution(resolution)
        self.with_normals = bool(with_normals)
        self.info = info
        self.entries: list[list] = []
        self._names: set[str] = set()
        self._closed = False
        if (self.out_dir / INDEX_FILE).exists() and not overwrite:
            raise DatasetFormatError(f"{self.out_dir / INDEX_FILE} already exists; pass overwrite=True to replace the dataset.")
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, name: str, image, segm, camera, smpl, normals=None, extras=None) -> None:
        """Write one sample (arguments as :func:`write_sample`)."""
        if self._closed:
            raise RuntimeError("this DatasetWriter is closed.")
        if name in self._names:
            raise DatasetFormatError(f"sample name {name!r} was already added.")
        if self.with_normals and normals is None:
            raise DatasetFormatError(f"sample {name!r}: this writer was made with with_normals=True; pass `normals`.")
        if not self.with_normals and normals is not None:
            raise DatasetFormatError(f"sample {name!r}: this writer was made with with_normals=False; got `normals`.")
        entry = write_sample(self.out_dir, name, image, segm, camera, smpl, normals, extras, self.resolution)
        self._names.add(name)
        self.entries.append(entry)

    def add_entry(self, entry: Sequence) -> None:
        """Record an entry returned by :func:`write_sample` in another process."""
        name = check_sample_name(entry[0])
        if name in self._names:
            raise DatasetFormatError(f"sample name {name!r} was already added.")
        self._names.add(name)
        self.entries.append([name, validate_label(entry[1], f"sample {name!r}")])

    def close(self) -> Path:
        """Write ``dataset.json`` (atomically) and return its path."""
        path = write_index(self.out_dir, self.entries, self.resolution, self.with_normals, self.info)
        self._closed = True
        return path

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and not self._closed:
            self.close()


# ---- Reading the index ----------------------------------------------------------------------------


@dataclass
class DatasetIndex:
    """The parsed ``dataset.json``.

    Attributes:
        root: The dataset folder.
        names: Sample names, in index order.
        labels: Structured labels, one per name.
        resolution: ``(W, H)`` declared in the index, or None (AG3D's files declare none).
        with_normals: Whether the index declares normal maps (None when it does not say).
        info: The index's free ``info`` object (empty if none).
    """

    root: Path
    names: list[str]
    labels: list[dict]
    resolution: tuple[int, int] | None
    with_normals: bool | None
    info: dict = field(default_factory=dict)

    def vectors(self) -> np.ndarray:
        """``(N, 111) float32`` flat label vectors."""
        return np.stack([label_to_vector(label) for label in self.labels])


def read_index(root: str | os.PathLike) -> DatasetIndex:
    """Read and check ``ROOT/dataset.json`` (our structured form or AG3D's label layouts).

    Raises:
        FileNotFoundError: If the folder or ``dataset.json`` is missing.
        DatasetFormatError: For unparseable JSON, a foreign format, a newer version, other parts, a
            bad resolution, duplicate or malformed names, and bad labels (wrong length, NaN, …).
    """
    root = Path(root)
    path = root / INDEX_FILE
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist.")
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: a dataset folder needs an index file {INDEX_FILE!r} (see docs/dataset_format.md).")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path} is not valid JSON: {error}.") from None
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{path}: the top level must be a JSON object, got {type(data).__name__}.")
    if "format" in data and data["format"] != FORMAT_NAME:
        raise DatasetFormatError(f"{path}: `format` must be {FORMAT_NAME!r}, got {data['format']!r}.")
    version = data.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise DatasetFormatError(f"{path}: `version` must be an integer from 1 to {FORMAT_VERSION}, got {version!r}.")
    if "parts" in data and list(data["parts"]) != list(PARTS):
        raise DatasetFormatError(
            f"{path}: `parts` must be {list(PARTS)} (label k + 1 = part k), got {data['parts']!r}."
        )
    resolution = None
    if data.get("resolution") is not None:
        try:
            resolution = normalize_resolution(data["resolution"], "resolution")
        except DatasetFormatError as error:
            raise DatasetFormatError(f"{path}: {error}") from None
    with_normals = data.get("normals")
    if with_normals is not None and not isinstance(with_normals, bool):
        raise DatasetFormatError(f"{path}: `normals` must be true or false, got {with_normals!r}.")
    info = data.get("info") or {}
    if not isinstance(info, dict):
        raise DatasetFormatError(f"{path}: `info` must be a JSON object, got {type(info).__name__}.")
    raw_labels = data.get("labels")
    if not isinstance(raw_labels, list) or not raw_labels:
        raise DatasetFormatError(f"{path}: `labels` must be a non-empty list of [name, label] pairs, got {raw_labels!r:.80}.")
    names, labels, seen = [], [], set()
    for position, entry in enumerate(raw_labels):
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[0], str):
            raise DatasetFormatError(f"{path}: `labels[{position}]` must be a [name, label] pair, got {entry!r:.80}.")
        name, raw = entry
        try:
            check_sample_name(name)
        except DatasetFormatError as error:
            raise DatasetFormatError(f"{path}: `labels[{position}]`: {error}") from None
        if name in seen:
            raise DatasetFormatError(f"{path}: sample {name!r} is listed twice in `labels`.")
        seen.add(name)
        names.append(name)
        labels.append(parse_label(raw, f"{path}: `labels[{position}]` ({name})"))
    return DatasetIndex(root=root, names=names, labels=labels, resolution=resolution, with_normals=with_normals, info=info)

