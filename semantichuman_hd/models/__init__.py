"""The neural components of SemanticHuman-HD, as diffusers ``ModelMixin``s (docs/method.md §3 and §5).

* :class:`SemanticMapper`: latents ``(B, K, z_dim)`` → part codes ``(B, K, num_ws, w_dim)``.
* :class:`LocalGenerators`: the K tri-plane generators (batched over parts), their decoders and β.
* :class:`SuperResolution3D`: the high-resolution tri-planes, decoders and β of stage 2.
"""

from .local_generators import BETA_INIT, DEFAULT_BOX_CENTER, DEFAULT_BOX_WARP, LocalGenerators
from .mapper import SemanticMapper
from .super_resolution import SR_SCALE, SuperResolution3D
from .synthesis import TriplaneOutput
from .triplane import NUM_PLANES, PLANE_AXES, PLANE_NAMES, DecoderQueryCounter, PartDecoders, count_decoder_queries, sample_triplanes

__all__ = [
    "BETA_INIT",
    "DEFAULT_BOX_CENTER",
    "DEFAULT_BOX_WARP",
    "DecoderQueryCounter",
    "LocalGenerators",
    "NUM_PLANES",
    "PLANE_AXES",
    "PLANE_NAMES",
    "PartDecoders",
    "SR_SCALE",
    "SemanticMapper",
    "SuperResolution3D",
    "TriplaneOutput",
    "count_decoder_queries",
    "sample_triplanes",
]
