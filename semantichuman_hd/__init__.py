"""SemanticHuman-HD: high-resolution, semantically disentangled 3D human generation in PyTorch.

``from semantichuman_hd import PARTS`` stays cheap (no torch, no diffusers): the pipeline and the model
classes are imported on first access (``semantichuman_hd.SemanticHumanPipeline``), and importing the
pipeline imports every component module, which diffusers ≥ 0.42.1 needs before it can load a
``model_index.json`` (docs/method.md §8).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .parts import NUM_PARTS, PART_COLORS, PARTS, part_index, part_indices

__version__ = "0.1.0"

_LAZY_EXPORTS: dict[str, str] = {
    "SemanticHumanPipeline": ".pipelines.pipeline_semantic_human",
    "SemanticHumanPipelineOutput": ".pipelines.pipeline_output",
    "SemanticMapper": ".models.mapper",
    "LocalGenerators": ".models.local_generators",
    "SuperResolution3D": ".models.super_resolution",
}
"""Public names imported on first access, and the module that defines each."""

__all__ = ["NUM_PARTS", "PARTS", "PART_COLORS", "part_index", "part_indices", "__version__", *_LAZY_EXPORTS]

if TYPE_CHECKING:
    from .models.local_generators import LocalGenerators
    from .models.mapper import SemanticMapper
    from .models.super_resolution import SuperResolution3D
    from .pipelines.pipeline_output import SemanticHumanPipelineOutput
    from .pipelines.pipeline_semantic_human import SemanticHumanPipeline


def __getattr__(name: str) -> Any:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))
