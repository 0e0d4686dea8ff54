"""SemanticHuman-HD: high-resolution, semantically disentangled 3D human generation in PyTorch."""

from .parts import NUM_PARTS, PART_COLORS, PARTS, part_index, part_indices

__version__ = "0.1.0"

__all__ = ["NUM_PARTS", "PARTS", "PART_COLORS", "part_index", "part_indices", "__version__"]
