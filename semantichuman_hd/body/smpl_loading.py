"""Reading a licensed SMPL model file safely, and writing the open body in the same format.

SMPL model files are Python pickles (written under Python 2, holding numpy arrays, a scipy sparse
joint regressor and `chumpy <https://github.com/mattloper/chumpy>`_ objects). Unpickling can run
arbitrary code, so :func:`load_smpl_file` uses a restricted unpickler that constructs only what SMPL
files need: numpy arrays, dtypes and scalars, and stand-ins for scipy sparse matrices and chumpy
objects that merely record their state (chumpy need not be installed). Anything else is refused before
it is constructed.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..io import atomic_path
from .smpl_format import NUM_BETAS, NUM_POSE_BASIS, NUM_SMPL_JOINTS, SMPL_FILE_KEYS, SMPL_PARENTS

SMPL_PATH_ENV_VAR: str = "SEMANTICHUMAN_SMPL_PATH"
"""Environment variable naming a licensed SMPL model file to use instead of the open body."""

LANDMARKS_KEY: str = "landmark_vertex_ids"
"""Optional file key: smplx's ``vertex_ids`` (extra keypoints) as a dict of vertex indices."""

_EXPECTED_FILE = (
    "a licensed neutral SMPL model pickle (e.g. SMPL_NEUTRAL.pkl from https://smpl.is.tue.mpg.de, "
    f"registration required); point {SMPL_PATH_ENV_VAR} (or `render-body --smpl`) at it, or leave both unset to "
    "use the open procedural body"
)


class _SparseMatrixStandIn:
    """Records the state of a pickled scipy sparse matrix (``data``, ``indices``, ``indptr``, shape)."""

    format = "csc"

    def __setstate__(self, state):
        self.state = state

    def to_dense(self) -> np.ndarray:
        from scipy import sparse

        state = self.state if isinstance(self.state, dict) else {}
        try:
            shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
            parts = (np.asarray(state["data"]), np.asarray(state["indices"]), np.asarray(state["indptr"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"a pickled {self.format} sparse matrix lacks its data ({error})") from None
        matrix = sparse.csc_matrix(parts, shape=shape) if self.format == "csc" else sparse.csr_matrix(parts, shape=shape)
        return matrix.toarray()


class _CscStandIn(_SparseMatrixStandIn):
    format = "csc"


class _CsrStandIn(_SparseMatrixStandIn):
    format = "csr"


class _ChumpyStandIn:
    """Records the state of a pickled chumpy object; a constant (``Ch``) keeps its value in ``x``."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state

    def to_array(self) -> np.ndarray:
        state = getattr(self, "state", None)
        if isinstance(state, dict) and "x" in state:
            return np.asarray(_plain(state["x"]))
        raise ValueError("a chumpy expression other than a constant array (it has no stored value 'x')")


_NUMPY_GLOBALS = {
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{core}.multiarray", "_reconstruct"),
        (f"{core}.multiarray", "scalar"),
        (f"{core}.numeric", "_frombuffer"),
    )
} | {("numpy", "ndarray"), ("numpy", "dtype")}

_SPARSE_CLASSES = {"csc_matrix": _CscStandIn, "csr_matrix": _CsrStandIn, "csc_array": _CscStandIn, "csr_array": _CsrStandIn}
_SPARSE_MODULES = {
    "scipy.sparse",
    "scipy.sparse.csc",  # scipy < 1.8 (and Python 2 era SMPL files)
    "scipy.sparse.csr",
    "scipy.sparse._csc",  # scipy >= 1.8
    "scipy.sparse._csr",
    "scipy.sparse.compressed",
}


_HARMLESS_BUILTINS = {
    ("__builtin__", "set"),  # chumpy objects keep a set of dirty variable names
    ("builtins", "set"),
    ("__builtin__", "frozenset"),
    ("builtins", "frozenset"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2
}


class _RefusedGlobal(Exception):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    """Constructs numpy arrays and stand-ins for sparse matrices and chumpy objects, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        if module in _SPARSE_MODULES and name in _SPARSE_CLASSES:
            return _SPARSE_CLASSES[name]
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStandIn
        if (module, name) in {("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")}:
            return _reconstructor
        if (module, name) in {("__builtin__", "object"), ("builtins", "object")}:
            return object
        if (module, name) in _HARMLESS_BUILTINS:
            return super().find_class(module, name)
        raise _RefusedGlobal(f"{module}.{name}")


def _reconstructor(cls, base, state):
    """``copyreg._reconstructor`` (protocol 0/1 pickles), limited to the classes allowed above."""
    if base is not object or not isinstance(cls, type):
        raise _RefusedGlobal(f"copyreg._reconstructor({cls!r}, {base!r})")
    return object.__new__(cls)


_MALFORMED_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    ImportError,
    MemoryError,
    UnicodeDecodeError,
)
"""What unpickling a truncated or foreign file raises (reported as a ValueError naming the file)."""


def _plain(value: Any) -> Any:
    """Replace the stand-ins by numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(value, _SparseMatrixStandIn):
        return value.to_dense()
    if isinstance(value, _ChumpyStandIn):
        return value.to_array()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


def load_smpl_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a SMPL model pickle safely.

    Parameters:
        path: A SMPL-format ``.pkl`` (a licensed SMPL model, or one written by :func:`write_smpl_file`).

    Returns:
        The file's dict with scipy sparse matrices and chumpy arrays turned into dense numpy arrays
        (other entries as stored). Not validated: see :func:`validate_smpl_data`.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message says what file is expected).
        ValueError: the file is not a readable pickle, is not a dict, or would construct anything other
            than numpy arrays, scipy sparse matrices or chumpy arrays.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"SMPL model file {str(path)!r} does not exist; expected {_EXPECTED_FILE}.")
    try:
        with open(path, "rb") as handle:
            raw = _RestrictedUnpickler(handle, encoding="latin1").load()
        data = _plain(raw)
    except _RefusedGlobal as refused:
        raise ValueError(
            f"refusing to load {str(path)!r}: it would construct {refused}, which a SMPL model file never needs."
        ) from None
    except _MALFORMED_PICKLE_ERRORS as error:
        raise ValueError(
            f"{str(path)!r} is not a readable SMPL model pickle ({type(error).__name__}: {error}); expected {_EXPECTED_FILE}."
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{str(path)!r} holds a {type(data).__name__}, not the dict of arrays of a SMPL model file.")
    return data


def _require(condition: bool, source: str, key: str, found: Any, allowed: str) -> None:
    if not condition:
        raise ValueError(f"{source}: `{key}` has shape {found}, expected {allowed}.")


def validate_smpl_data(data: Mapping[str, Any], source: str, expected_num_vertices: int | None = None) -> None:
    """Check that ``data`` is a usable SMPL-format body model; raise ValueError otherwise.

    Parameters:
        data: The model's arrays (as from :func:`load_smpl_file` or the procedural builder).
        source: Where the data came from, for the error messages (e.g. the file path).
        expected_num_vertices: If given, the required vertex count (``SMPL_NUM_VERTICES`` = 6890 for a
            real SMPL file).

    Checks every key of ``SMPL_FILE_KEYS`` is present, the shapes agree (``v_template (V, 3)``,
    ``shapedirs (V, 3, ≥10)``, ``posedirs (V, 3, 207)``, ``J_regressor (24, V)``, ``weights (V, 24)``,
    ``kintree_table (2, 24)`` with SMPL's parents, ``f (F, 3)`` indexing vertices), and values are finite.
    """
    missing = [key for key in SMPL_FILE_KEYS if key not in data]
    if missing:
        raise ValueError(f"{source}: missing key(s) {missing}; a SMPL model file holds {list(SMPL_FILE_KEYS)}.")
    arrays = {}
    for key in SMPL_FILE_KEYS:
        try:
            arrays[key] = np.asarray(data[key])
        except Exception as error:  # noqa: BLE001 - any conversion failure means a bad entry
            raise ValueError(f"{source}: `{key}` is not an array ({error}).") from None
        if arrays[key].dtype.kind not in "biuf":
            raise ValueError(f"{source}: `{key}` has dtype {arrays[key].dtype}, expected a numeric array.")
        if arrays[key].dtype.kind == "f" and not np.all(np.isfinite(arrays[key])):
            raise ValueError(f"{source}: `{key}` holds NaN or infinite values.")

    template = arrays["v_template"]
    _require(template.ndim == 2 and template.shape[1] == 3, source, "v_template", template.shape, "(V, 3)")
    V = template.shape[0]
    if expected_num_vertices is not None and V != expected_num_vertices:
        raise ValueError(
            f"{source}: `v_template` has shape {template.shape}, expected ({expected_num_vertices}, 3): "
            f"a SMPL model has {expected_num_vertices} vertices."
        )
    shapedirs = arrays["shapedirs"]
    shapedirs_ok = shapedirs.ndim == 3 and shapedirs.shape[:2] == (V, 3) and shapedirs.shape[2] >= NUM_BETAS
    _require(shapedirs_ok, source, "shapedirs", shapedirs.shape, f"({V}, 3, >={NUM_BETAS})")
    exact_shapes = {
        "posedirs": (V, 3, NUM_POSE_BASIS),
        "J_regressor": (NUM_SMPL_JOINTS, V),
        "weights": (V, NUM_SMPL_JOINTS),
        "kintree_table": (2, NUM_SMPL_JOINTS),
    }
    for key, shape in exact_shapes.items():
        _require(arrays[key].shape == shape, source, key, arrays[key].shape, str(shape))
    parents = [int(p) for p in arrays["kintree_table"][0, 1:]]
    if parents != list(SMPL_PARENTS[1:]):
        raise ValueError(f"{source}: `kintree_table` parents {[-1] + parents} differ from SMPL's {list(SMPL_PARENTS)}.")
    faces = arrays["f"]
    _require(faces.ndim == 2 and faces.shape[1] == 3, source, "f", faces.shape, "(F, 3)")
    if faces.dtype.kind not in "iu" or faces.size == 0 or faces.min() < 0 or faces.max() >= V:
        found = f"[{faces.min()}, {faces.max()}]" if faces.size else "no faces"
        raise ValueError(f"{source}: `f` must hold integer vertex indices in [0, {V}), got dtype {faces.dtype}, {found}.")
    landmarks = data.get(LANDMARKS_KEY)
    if landmarks is not None:
        valid = isinstance(landmarks, Mapping) and all(
            isinstance(i, (int, np.integer)) and 0 <= int(i) < V for i in landmarks.values()
        )
        if not valid:
            raise ValueError(f"{source}: `{LANDMARKS_KEY}` must be a dict of vertex indices in [0, {V}).")


def write_smpl_file(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a SMPL-format model pickle holding only plain numpy arrays (readable by ``smplx.SMPL``).

    Parameters:
        data: The keys of ``SMPL_FILE_KEYS`` (and optionally ``landmark_vertex_ids``, written as a
            plain dict of ints); other keys are not written.
        path: Destination; written atomically.

    Returns:
        The path written.
    """
    validate_smpl_data(data, source="write_smpl_file(data)")
    payload: dict[str, Any] = {}
    for key in SMPL_FILE_KEYS:
        array = np.asarray(data[key])
        dtype = np.int64 if array.dtype.kind in "iu" else np.float64
        payload[key] = np.ascontiguousarray(array, dtype=dtype)
    if data.get(LANDMARKS_KEY) is not None:
        payload[LANDMARKS_KEY] = {str(name): int(index) for name, index in data[LANDMARKS_KEY].items()}
    path = Path(path).expanduser()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            pickle.dump(payload, handle, protocol=4)
    return path
