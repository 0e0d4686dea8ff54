"""Pipelines, installed as :mod:`semantichuman_hd.pipelines` (see the README's layout section)."""
