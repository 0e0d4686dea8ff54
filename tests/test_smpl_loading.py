"""Safe SMPL pickle loading, validation and writing (small synthetic models; no real SMPL file needed)."""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import pytest
from scipy import sparse

from semantichuman_hd.body.smpl_format import NUM_POSE_BASIS, NUM_SMPL_JOINTS, SMPL_NUM_VERTICES, SMPL_PARENTS
from semantichuman_hd.body.smpl_loading import load_smpl_file, validate_smpl_data, write_smpl_file

NUM_VERTICES = 12


def _tiny_model(num_vertices: int = NUM_VERTICES) -> dict:
    rng = np.random.default_rng(0)
    weights = rng.random((num_vertices, NUM_SMPL_JOINTS))
    regressor = rng.random((NUM_SMPL_JOINTS, num_vertices))
    return {
        "v_template": rng.normal(size=(num_vertices, 3)),
        "shapedirs": rng.normal(size=(num_vertices, 3, 10)),
        "posedirs": rng.normal(size=(num_vertices, 3, NUM_POSE_BASIS)),
        "J_regressor": regressor / regressor.sum(1, keepdims=True),
        "weights": weights / weights.sum(1, keepdims=True),
        "kintree_table": np.array([[4294967295] + list(SMPL_PARENTS[1:]), list(range(NUM_SMPL_JOINTS))], dtype=np.int64),
        "f": np.array([[0, 1, 2], [2, 3, 0], [4, 5, 6]], dtype=np.int64),
    }


def test_round_trip(tmp_path):
    model = dict(_tiny_model(), landmark_vertex_ids={"nose": 3, "leye": 4})
    path = write_smpl_file(model, tmp_path / "model.pkl")
    loaded = load_smpl_file(path)
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f"):
        assert isinstance(loaded[key], np.ndarray)
        np.testing.assert_array_equal(loaded[key], model[key])
    assert loaded["landmark_vertex_ids"] == {"nose": 3, "leye": 4}
    validate_smpl_data(loaded, "round trip")
    # smplx's own reader (plain pickle) gets plain numpy arrays too.
    with open(path, "rb") as handle:
        plain = pickle.load(handle, encoding="latin1")
    assert all(type(plain[key]) is np.ndarray for key in ("v_template", "f", "J_regressor"))


def test_sparse_regressor_and_chumpy_objects_load_without_chumpy(tmp_path, monkeypatch):
    """A pickle like a real SMPL file: a chumpy ``Ch`` for ``shapedirs`` and a csc ``J_regressor``."""
    model = _tiny_model()
    fake = types.ModuleType("chumpy.ch")

    class Ch:  # pickled by reference as chumpy.ch.Ch, state holds the value in `x`
        def __init__(self, x):
            self.x = x
            self._dirty_vars = {"x"}  # like chumpy, whose state holds a set
            self._depends_on_deps = {}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    fake.Ch = Ch
    package = types.ModuleType("chumpy")
    package.ch = fake
    monkeypatch.setitem(sys.modules, "chumpy", package)
    monkeypatch.setitem(sys.modules, "chumpy.ch", fake)
    stored = dict(model, shapedirs=Ch(model["shapedirs"]), J_regressor=sparse.csc_matrix(model["J_regressor"]))
    path = tmp_path / "smpl_like.pkl"
    for protocol in (2, 4):
        with open(path, "wb") as handle:
            pickle.dump(stored, handle, protocol=protocol)
        monkeypatch.delitem(sys.modules, "chumpy")
        monkeypatch.delitem(sys.modules, "chumpy.ch")
        loaded = load_smpl_file(path)  # chumpy is not importable now
        assert isinstance(loaded["shapedirs"], np.ndarray) and isinstance(loaded["J_regressor"], np.ndarray)
        np.testing.assert_array_equal(loaded["shapedirs"], model["shapedirs"])
        np.testing.assert_allclose(loaded["J_regressor"], model["J_regressor"])
        monkeypatch.setitem(sys.modules, "chumpy", package)
        monkeypatch.setitem(sys.modules, "chumpy.ch", fake)


class _RunsCommand:
    def __init__(self, module: str, name: str, argument: str):
        self.target = (module, name, argument)

    def __reduce__(self):
        module, name, argument = self.target
        return (getattr(__import__(module), name), (argument,))


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"), ("builtins", "exec")])
def test_malicious_pickle_is_refused_without_running(tmp_path, module, name):
    sentinel = tmp_path / "pwned"
    if name == "system":
        argument = f"touch {sentinel}"
    else:
        argument = f"open({str(sentinel)!r}, 'w').write('x')"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"v_template": _RunsCommand(module, name, argument)}, handle, protocol=2)
    with pytest.raises(ValueError, match="refusing to load"):
        load_smpl_file(path)
    assert not sentinel.exists()


def test_missing_file_explains_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="SMPL") as info:
        load_smpl_file(tmp_path / "nope.pkl")
    assert "nope.pkl" in str(info.value) and "SEMANTICHUMAN_SMPL_PATH" in str(info.value)


@pytest.mark.parametrize("content", [b"this is not a pickle", pickle.dumps({"a": np.zeros(100)})[:40]])
def test_malformed_file_raises_value_error_naming_path(tmp_path, content):
    path = tmp_path / "broken.pkl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.pkl"):
        load_smpl_file(path)


def test_non_dict_pickle_is_rejected(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="list"):
        load_smpl_file(path)


def test_validation_wrong_vertex_count_names_6890():
    with pytest.raises(ValueError, match=str(SMPL_NUM_VERTICES)) as info:
        validate_smpl_data(_tiny_model(), "tiny", expected_num_vertices=SMPL_NUM_VERTICES)
    assert "v_template" in str(info.value)


def test_validation_missing_key():
    model = _tiny_model()
    del model["posedirs"]
    with pytest.raises(ValueError, match="posedirs"):
        validate_smpl_data(model, "tiny")


@pytest.mark.parametrize(
    "key,value,allowed",
    [
        ("shapedirs", np.zeros((NUM_VERTICES, 3, 5)), ">=10"),
        ("posedirs", np.zeros((NUM_VERTICES, 3, 200)), "207"),
        ("J_regressor", np.zeros((23, NUM_VERTICES)), "(24,"),
        ("weights", np.zeros((NUM_VERTICES + 1, 24)), f"({NUM_VERTICES}, 24)"),
        ("kintree_table", np.zeros((2, 23), dtype=np.int64), "(2, 24)"),
        ("f", np.zeros((3, 4), dtype=np.int64), "(F, 3)"),
        ("v_template", np.zeros((NUM_VERTICES, 2)), "(V, 3)"),
    ],
)
def test_validation_bad_shape_names_key_and_shapes(key, value, allowed):
    model = _tiny_model()
    model[key] = value
    with pytest.raises(ValueError) as info:
        validate_smpl_data(model, "tiny")
    message = str(info.value)
    assert key in message and str(value.shape) in message and allowed in message


def test_validation_face_index_out_of_range_and_non_finite():
    model = _tiny_model()
    model["f"] = np.array([[0, 1, NUM_VERTICES]])
    with pytest.raises(ValueError, match="`f`"):
        validate_smpl_data(model, "tiny")
    model = _tiny_model()
    model["v_template"][0, 0] = np.nan
    with pytest.raises(ValueError, match="v_template"):
        validate_smpl_data(model, "tiny")


def test_validation_wrong_kinematic_tree():
    model = _tiny_model()
    model["kintree_table"][0, 5] = 3
    with pytest.raises(ValueError, match="kintree_table"):
        validate_smpl_data(model, "tiny")
