"""Pipelines, installed as :mod:`semantichuman_hd.pipelines` (see the README's layout section)."""

from .pipeline_semantic_human import SemanticHumanPipeline, SemanticHumanPipelineOutput

__all__ = ["SemanticHumanPipeline", "SemanticHumanPipelineOutput"]
