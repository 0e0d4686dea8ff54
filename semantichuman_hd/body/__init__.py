"""The body: SMPL-format body models, the canonical SDF prior and the posed→canonical deformer."""
