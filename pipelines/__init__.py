"""Pipelines, installed as :mod:`semantichuman_hd.pipelines` (see the README's layout section)."""

from semantichuman_hd.pipelines.pipeline_output import SemanticHumanPipelineOutput
from semantichuman_hd.pipelines.pipeline_semantic_human import SemanticHumanPipeline

__all__ = ["SemanticHumanPipeline", "SemanticHumanPipelineOutput"]
