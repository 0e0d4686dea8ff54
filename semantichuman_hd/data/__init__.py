"""Training data: the dataset format and its writer (:mod:`.format`), the torch dataset
(:mod:`.dataset`), picture/label/mirror operations (:mod:`.transforms`), DeepFashion-MultiModal
labels and preparation (:mod:`.labels`, :mod:`.deepfashion`) and previews (:mod:`.preview`).

The format is documented in ``docs/dataset_format.md``.
"""

from .dataset import SemanticHumanDataset
from .deepfashion import DEEPFASHION_LABEL_TO_PART, PrepReport, load_smpl_fits, prepare_deepfashion
from .format import (
    CAMERA_LABEL_DIM,
    FORMAT_NAME,
    FORMAT_VERSION,
    LABEL_DIM,
    SMPL_LABEL_DIM,
    DatasetFormatError,
    DatasetWriter,
    label_to_vector,
    read_index,
    vector_to_label,
    write_index,
    write_sample,
)
from .labels import colorize_labels
from .preview import dataset_stats, preview_dataset

__all__ = [
    "CAMERA_LABEL_DIM",
    "DEEPFASHION_LABEL_TO_PART",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "LABEL_DIM",
    "SMPL_LABEL_DIM",
    "DatasetFormatError",
    "DatasetWriter",
    "PrepReport",
    "SemanticHumanDataset",
    "colorize_labels",
    "dataset_stats",
    "label_to_vector",
    "load_smpl_fits",
    "prepare_deepfashion",
    "preview_dataset",
    "read_index",
    "vector_to_label",
    "write_index",
    "write_sample",
]
