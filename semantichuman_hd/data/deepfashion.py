"""Prepare DeepFashion-MultiModal for training: parsing maps → part labels, white square padding,
resizing, and the user's SMPL/camera fits joined per image (docs/method.md §1, §7).

Inputs (docs/dataset_format.md has the details):

* ``images_dir``: the release's ``images/`` folder (``NAME.jpg``, 750 × 1101) or AG3D-style crops
  (1024 × 512); ``.jpg``, ``.jpeg`` and ``.png`` files are used.
* ``parsing_dir``: the release's ``segm/`` folder, one ``NAME_segm.png`` per annotated image, values
  0..23 grouped into parts by :data:`~semantichuman_hd.data.labels.DEEPFASHION_LABEL_TO_PART`.
* ``smpl_file``: SMPL + camera fits (none ship with the dataset): AG3D's ``dataset.json`` layout, our
  own ``dataset.json`` layout, a JSON object ``{NAME: {"camera": …, "smpl": …}}``, or an ``.npz`` with
  arrays ``names, cam2world, intrinsics, scale, transl, global_orient, body_pose, betas``. Fits are
  matched to images by file stem (name without folder and extension).
* ``normals_dir`` (optional): normal maps ``NAME.png`` or ``NAME_normal.png``, encoded
  ``(n + 1)/2 · 255`` on white.

Each picture is centred on a white square (labels: background) and resized to ``image_size``; label
maps nearest-neighbour only. The camera intrinsics of the fits are taken to be normalised to that
padded square (``intrinsics_frame="padded"``, as AG3D's fits, which were made on the padded images);
fits made on the unpadded picture are converted with ``intrinsics_frame="original"``.

Images that cannot be used are skipped and reported (:class:`PrepReport`, also written as
``prep_report.json`` in the output folder); values outside 0..23 are mapped to background and counted.
"""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ..checks import check_choice, check_positive_int, renamed_argument
from ..io import atomic_path
from ..parts import PARTS
from .dataset import read_label_map, read_rgb
from .format import (
    BACKGROUND_LABEL,
    INDEX_FILE,
    SMPL_FIELDS,
    WHITE,
    DatasetFormatError,
    make_label,
    parse_label,
    write_index,
    write_sample,
)
from .labels import DEEPFASHION_LABEL_TO_PART, deepfashion_to_parts
from .format import encode_normals
from .transforms import decode_normals, pad_to_square, padded_intrinsics, resize_image, resize_labels, resize_normals

PARSING_SUFFIX: str = "_segm.png"
"""A parsing map is named after its image with this in place of the extension."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
"""Image files taken from ``images_dir`` (case-insensitive)."""

NORMAL_SUFFIXES: tuple[str, ...] = (".png", "_normal.png")
"""Normal-map names tried for an image stem, in order."""

INTRINSICS_FRAMES: tuple[str, ...] = ("padded", "original")
"""Which picture the fits' normalised intrinsics refer to: the white-padded square or the original."""

DEFAULT_IMAGE_SIZE: int = 1024
"""Output side in pixels (the paper's stage-2 render size)."""

DEFAULT_RESOLUTION: int = DEFAULT_IMAGE_SIZE
"""Deprecated name of :data:`DEFAULT_IMAGE_SIZE`."""

REPORT_FILE: str = "prep_report.json"
"""Report written into the output folder."""

NPZ_FIT_ARRAYS: dict[str, tuple[int, ...]] = {
    "cam2world": (4, 4),
    "intrinsics": (3, 3),
    **{name: (() if name == "scale" else (size,)) for name, size in SMPL_FIELDS},
}
"""Arrays of an ``.npz`` fits file besides ``names (N,)``, with their per-image shapes."""

SKIP_NO_PARSING = "no parsing map"
SKIP_NO_FIT = "no SMPL fit"
SKIP_NO_NORMALS = "no normal map"
SKIP_UNREADABLE_IMAGE = "unreadable image"
SKIP_UNREADABLE_PARSING = "unreadable parsing map"
SKIP_UNREADABLE_NORMALS = "unreadable normal map"
SKIP_SIZE_MISMATCH = "size mismatch"
SKIP_DUPLICATE = "duplicate name"
SKIP_REASONS: tuple[str, ...] = (
    SKIP_NO_PARSING,
    SKIP_NO_FIT,
    SKIP_NO_NORMALS,
    SKIP_UNREADABLE_IMAGE,
    SKIP_UNREADABLE_PARSING,
    SKIP_UNREADABLE_NORMALS,
    SKIP_SIZE_MISMATCH,
    SKIP_DUPLICATE,
)
"""Why an image can be left out of the prepared dataset."""

REPORT_EXAMPLES: int = 5
"""Names shown per skip reason in the printed summary (the JSON report lists all)."""


@dataclass
class PrepReport:
    """What :func:`prepare_deepfashion` did.

    Attributes:
        out_dir: The dataset folder written.
        image_size: Side of the written pictures, pixels.
        intrinsics_frame: Frame the fits' intrinsics were read in.
        num_images: Image files found in ``images_dir``.
        written: Names of the samples written, sorted.
        skipped: ``{"image", "reason", "detail"}`` for every image left out (reason ∈ :data:`SKIP_REASONS`).
        unknown_labels: Parsing values outside 0..23 (mapped to background): ``{value: {"images", "pixels"}}``.
        unused_fits: Number of fits that matched no image.
    """

    out_dir: str
    image_size: int
    intrinsics_frame: str
    num_images: int = 0
    written: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    unknown_labels: dict[int, dict[str, int]] = field(default_factory=dict)
    unused_fits: int = 0

    def skip(self, image: str, reason: str, detail: str = "") -> None:
        self.skipped.append({"image": image, "reason": reason, "detail": detail})

    def skipped_by_reason(self) -> dict[str, int]:
        """Number of skipped images per reason (reasons with none left out)."""
        counts: dict[str, int] = {}
        for entry in self.skipped:
            counts[entry["reason"]] = counts.get(entry["reason"], 0) + 1
        return counts

    def to_dict(self) -> dict:
        data = asdict(self)
        data["unknown_labels"] = {str(value): counts for value, counts in sorted(self.unknown_labels.items())}
        data["skipped_by_reason"] = self.skipped_by_reason()
        data["num_written"] = len(self.written)
        return data

    def summary(self) -> str:
        """A short human-readable account."""
        lines = [
            f"DeepFashion-MultiModal → {self.out_dir}: {len(self.written)} of {self.num_images} images written at "
            f"{self.image_size}² (intrinsics frame: {self.intrinsics_frame})."
        ]
        for reason, count in self.skipped_by_reason().items():
            examples = [entry["image"] for entry in self.skipped if entry["reason"] == reason][:REPORT_EXAMPLES]
            more = ", …" if count > len(examples) else ""
            lines.append(f"  skipped {count} ({reason}): {', '.join(examples)}{more}")
        for value, counts in sorted(self.unknown_labels.items()):
            lines.append(f"  parsing value {value} is not a DeepFashion label: {counts['pixels']} pixels in {counts['images']} images mapped to background")
        if self.unused_fits:
            lines.append(f"  {self.unused_fits} SMPL fits matched no image")
        lines.append(f"  report: {Path(self.out_dir) / REPORT_FILE}")
        return "\n".join(lines)


# ---- SMPL / camera fits ---------------------------------------------------------------------------


def _stem(name: str) -> str:
    return Path(str(name).replace("\\", "/")).stem


def _add_fit(fits: dict[str, dict], name, label: dict, path: Path) -> None:
    if not isinstance(name, str) or not name:
        raise DatasetFormatError(f"{path}: fit names must be non-empty strings, got {name!r}.")
    stem = _stem(name)
    if stem in fits:
        raise DatasetFormatError(f"{path}: two fits share the image stem {stem!r} (fits are matched by file stem).")
    fits[stem] = label


def load_smpl_fits(path: str | os.PathLike) -> dict[str, dict]:
    """Read SMPL + camera fits and return ``{image stem: structured label}``.

    Accepted files (details in docs/dataset_format.md):

    * ``.json`` with a ``"labels"`` list of ``[name, label]`` (AG3D's ``dataset.json``: label = 111
      floats or ``[[25], [86]]``; or our structured labels);
    * ``.json`` object ``{name: {"camera": {...}, "smpl": {...}}}`` (a flat 111-float list also works);
    * ``.npz`` (read with ``allow_pickle=False``) with ``names (N,)`` strings and the arrays of
      :data:`NPZ_FIT_ARRAYS`.

    Raises:
        FileNotFoundError: If the file is missing.
        DatasetFormatError: For an unknown extension, unparseable content, or a bad fit (naming it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SMPL fits file {path} does not exist.")
    fits: dict[str, dict] = {}
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DatasetFormatError(f"{path} is not valid JSON: {error}.") from None
        if isinstance(data, dict) and "labels" in data:
            entries = data["labels"]
            if not isinstance(entries, list):
                raise DatasetFormatError(f"{path}: `labels` must be a list of [name, label] pairs, got {type(entries).__name__}.")
            for position, entry in enumerate(entries):
                if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                    raise DatasetFormatError(f"{path}: `labels[{position}]` must be a [name, label] pair, got {entry!r:.80}.")
                _add_fit(fits, entry[0], parse_label(entry[1], f"{path}: `labels[{position}]` ({entry[0]})"), path)
        elif isinstance(data, dict):
            for name, raw in data.items():
                _add_fit(fits, name, parse_label(raw, f"{path}: fit {name!r}"), path)
        else:
            raise DatasetFormatError(f"{path}: expected a JSON object ({{name: label}} or {{\"labels\": [...]}}), got {type(data).__name__}.")
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        except ValueError as error:
            raise DatasetFormatError(
                f"{path} could not be read without pickle ({error}); store `names` as a string array, e.g. "
                f"np.array(names, dtype=str), and every other array as numbers."
            ) from None
        except (OSError, EOFError) as error:
            raise DatasetFormatError(f"{path} is not a readable .npz archive: {error}.") from None
        required = ("names",) + tuple(NPZ_FIT_ARRAYS)
        missing = [key for key in required if key not in arrays]
        if missing:
            raise DatasetFormatError(f"{path}: arrays {missing} are missing; an .npz fits file needs {list(required)}.")
        names = arrays["names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetFormatError(f"{path}: `names` must be a 1-D string array, got shape {names.shape} and dtype {names.dtype}.")
        count = len(names)
        for key, shape in NPZ_FIT_ARRAYS.items():
            expected = (count,) + shape
            if arrays[key].shape != expected and not (key == "scale" and arrays[key].shape == (count, 1)):
                raise DatasetFormatError(f"{path}: `{key}` must have shape {expected} for {count} names, got {arrays[key].shape}.")
        for row, name in enumerate(names.astype(str)):
            camera = {"cam2world": arrays["cam2world"][row], "intrinsics": arrays["intrinsics"][row]}
            smpl = {key: arrays[key][row] for key, _ in SMPL_FIELDS}
            _add_fit(fits, str(name), make_label(camera, smpl, where=f"{path}: fit {name!r}"), path)
    else:
        raise DatasetFormatError(f"SMPL fits file {path} must end in .json or .npz, got {path.suffix!r}.")
    if not fits:
        raise DatasetFormatError(f"SMPL fits file {path} holds no fits.")
    return fits


# ---- One image ------------------------------------------------------------------------------------


@dataclass
class _Task:
    name: str
    image_path: Path
    parsing_path: Path
    normals_path: Path | None
    label: dict
    out_dir: Path
    image_size: int
    intrinsics_frame: str


def _resize_rgb(picture: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1).to(torch.float32)
    return resize_image(tensor, size).round().clamp(0, WHITE).to(torch.uint8).permute(1, 2, 0).numpy()


def _prepare_one(task: _Task) -> dict[str, Any]:
    """Convert and write one image; returns ``{"entry": …, "unknown": …}`` or ``{"skip": reason, "detail": …}``."""
    try:
        image = read_rgb(task.image_path)
    except (DatasetFormatError, OSError) as error:
        return {"skip": SKIP_UNREADABLE_IMAGE, "detail": str(error)}
    try:
        parsing = read_label_map(task.parsing_path)
    except (DatasetFormatError, OSError) as error:
        return {"skip": SKIP_UNREADABLE_PARSING, "detail": str(error)}
    height, width = image.shape[:2]
    if parsing.shape != (height, width):
        return {
            "skip": SKIP_SIZE_MISMATCH,
            "detail": f"image {width} × {height} but parsing map {parsing.shape[1]} × {parsing.shape[0]} (W × H)",
        }
    normals = None
    if task.normals_path is not None:
        try:
            normals = read_rgb(task.normals_path)
        except (DatasetFormatError, OSError) as error:
            return {"skip": SKIP_UNREADABLE_NORMALS, "detail": str(error)}
        if normals.shape != image.shape:
            return {
                "skip": SKIP_SIZE_MISMATCH,
                "detail": f"image {width} × {height} but normal map {normals.shape[1]} × {normals.shape[0]} (W × H)",
            }
    parts, unknown = deepfashion_to_parts(parsing)
    label = task.label
    if task.intrinsics_frame == "original":
        intrinsics = padded_intrinsics(np.asarray(label["camera"]["intrinsics"]), width, height)
        label = make_label({"cam2world": label["camera"]["cam2world"], "intrinsics": intrinsics}, label["smpl"], label.get("extras"))
    size = task.image_size
    image_out = _resize_rgb(pad_to_square(image, WHITE), size)
    parts_square = torch.from_numpy(pad_to_square(parts, BACKGROUND_LABEL).astype(np.int64))
    segm_out = resize_labels(parts_square, size)
    normals_out = None
    if normals is not None:
        normals_square = pad_to_square(normals, WHITE)
        # Normals are trusted where the parsing map shows the person and the normal map is not white.
        foreground = (parts_square != BACKGROUND_LABEL).numpy() & ~(normals_square == WHITE).all(axis=-1)
        decoded = decode_normals(normals_square, foreground)
        resized = resize_normals(decoded, torch.from_numpy(foreground), size, segm_out != BACKGROUND_LABEL)
        normals_out = encode_normals(resized.permute(1, 2, 0).numpy(), (segm_out != BACKGROUND_LABEL).numpy())
    extras = dict(label.get("extras", {}))
    extras["source"] = {"dataset": "DeepFashion-MultiModal", "image": task.image_path.name, "parsing": task.parsing_path.name}
    entry = write_sample(
        task.out_dir,
        task.name,
        image_out,
        segm_out.to(torch.uint8).numpy(),
        label["camera"],
        label["smpl"],
        normals=normals_out,
        extras=extras,
        resolution=size,
    )
    return {"entry": entry, "unknown": unknown}


def _worker_init() -> None:
    torch.set_num_threads(1)


def _image_files(images_dir: Path) -> list[Path]:
    return sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def _find_normals(normals_dir: Path, stem: str) -> Path | None:
    for suffix in NORMAL_SUFFIXES:
        candidate = normals_dir / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def prepare_deepfashion(
    images_dir: str | os.PathLike,
    parsing_dir: str | os.PathLike,
    smpl_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    normals_dir: str | os.PathLike | None = None,
    image_size: int = DEFAULT_IMAGE_SIZE,
    intrinsics_frame: str = "padded",
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = False,
    resolution: int | None = None,
) -> PrepReport:
    """Convert DeepFashion-MultiModal into a dataset folder of :mod:`semantichuman_hd.data.format`.

    Parameters:
        images_dir: Folder of the images (``NAME.jpg``).
        parsing_dir: Folder of the parsing maps (``NAME_segm.png``).
        smpl_file: SMPL + camera fits (see :func:`load_smpl_fits`).
        out_dir: Dataset folder to write.
        normals_dir: Optional folder of normal maps (``NAME.png`` or ``NAME_normal.png``); when given,
            every written sample has one and images without one are skipped.
        image_size: Side of the output squares, pixels.
        intrinsics_frame: ``"padded"`` if the fits' normalised intrinsics refer to the white-padded
            square picture, ``"original"`` if to the unpadded one (converted here).
        workers: Processes converting images in parallel (1 = in this process).
        overwrite: Replace an existing dataset in ``out_dir``.
        progress: Show a progress bar on stderr.
        resolution: Deprecated name of ``image_size``.

    Returns:
        The :class:`PrepReport` (also written to ``out_dir/prep_report.json``).

    Raises:
        FileNotFoundError: If an input folder or the fits file is missing.
        ValueError: For a bad argument, unreadable fits, an existing dataset without ``overwrite``, or
            when no image at all could be prepared (the report is written first).
    """
    images_dir, parsing_dir, out_dir = Path(images_dir), Path(parsing_dir), Path(out_dir)
    for argument, folder in (("images_dir", images_dir), ("parsing_dir", parsing_dir), ("normals_dir", normals_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise FileNotFoundError(f"`{argument}` {folder} is not a folder.")
    argument = "image_size" if resolution is None else "resolution"  # errors name what the caller passed
    image_size = check_positive_int(renamed_argument(image_size, resolution, "image_size", "resolution", default=DEFAULT_IMAGE_SIZE), argument)
    check_choice(intrinsics_frame, INTRINSICS_FRAMES, "intrinsics_frame")
    check_positive_int(workers, "workers")
    if (out_dir / INDEX_FILE).exists() and not overwrite:
        raise ValueError(f"{out_dir / INDEX_FILE} already exists; pass overwrite=True (--overwrite) to replace it.")
    fits = load_smpl_fits(smpl_file)
    report = PrepReport(out_dir=str(out_dir), image_size=image_size, intrinsics_frame=intrinsics_frame)
    files = _image_files(images_dir)
    report.num_images = len(files)
    tasks: list[_Task] = []
    used_stems: set[str] = set()
    for path in files:
        stem = path.stem
        if stem in used_stems:
            report.skip(path.name, SKIP_DUPLICATE, f"another image with the stem {stem!r} was already taken")
            continue
        parsing_path = parsing_dir / f"{stem}{PARSING_SUFFIX}"
        if not parsing_path.is_file():
            report.skip(path.name, SKIP_NO_PARSING, f"{parsing_path.name} not in {parsing_dir}")
            continue
        if stem not in fits:
            report.skip(path.name, SKIP_NO_FIT, f"no fit named {stem!r} in {smpl_file}")
            continue
        normals_path = None
        if normals_dir is not None:
            normals_path = _find_normals(Path(normals_dir), stem)
            if normals_path is None:
                report.skip(path.name, SKIP_NO_NORMALS, f"neither {' nor '.join(stem + s for s in NORMAL_SUFFIXES)} in {normals_dir}")
                continue
        used_stems.add(stem)
        tasks.append(_Task(f"{stem}.png", path, parsing_path, normals_path, fits[stem], out_dir, image_size, intrinsics_frame))
    report.unused_fits = len(set(fits) - {path.stem for path in files})

    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for task, result in zip(tasks, _run(tasks, workers, progress)):
        if "skip" in result:
            report.skip(task.image_path.name, result["skip"], result["detail"])
            continue
        entries.append(result["entry"])
        report.written.append(task.name)
        for value, pixels in result["unknown"].items():
            counts = report.unknown_labels.setdefault(value, {"images": 0, "pixels": 0})
            counts["images"] += 1
            counts["pixels"] += pixels
    report.written.sort()
    with atomic_path(out_dir / REPORT_FILE) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    if not entries:
        raise ValueError(f"no image could be prepared from {images_dir}; see {out_dir / REPORT_FILE}.\n{report.summary()}")
    info = {
        "source": "DeepFashion-MultiModal",
        "intrinsics_frame": "padded square",
        "deepfashion_labels_per_part": {part: [v for v, p in DEEPFASHION_LABEL_TO_PART.items() if p == part] for part in PARTS},
    }
    write_index(out_dir, sorted(entries, key=lambda entry: entry[0]), image_size, normals_dir is not None, info=info)
    return report


def _run(tasks: list[_Task], workers: int, progress: bool) -> Iterator[dict]:
    """Results of :func:`_prepare_one` in task order, in this process or a pool of ``workers``."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="DeepFashion", unit="img", file=sys.stderr)
    try:
        if workers == 1 or len(tasks) <= 1:
            for task in tasks:
                yield _prepare_one(task)
                if bar is not None:
                    bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init) as pool:
                for result in pool.map(_prepare_one, tasks, chunksize=8):
                    yield result
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
