"""``from_pretrained``, ``save_pretrained`` and ``push_to_hub`` of a pipeline in this package's Hub format
(docs/method.md §8): the mixin that :class:`~semantichuman_hd.pipelines.SemanticHumanPipeline` inherits
before ``diffusers.DiffusionPipeline``, whose loading and saving it wraps with the checks and files of
:mod:`semantichuman_hd.hub`.
"""

from __future__ import annotations

import os

from .hub import (
    BUNDLED_VARIANT,
    bundled_model_folder,
    check_safe_serialization,
    finish_pipeline_folder,
    prepare_pretrained_folder,
    push_pipeline_to_hub,
    upload_saved_pipeline,
)


class SemanticHubMixin:
    """Hub overrides for a ``DiffusionPipeline`` subclass: list this mixin first among the bases
    (``class P(SemanticHubMixin, DiffusionPipeline)``) so that its methods wrap diffusers' ones."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike | None = None, **kwargs):
        """Load from a local folder written by :meth:`save_pretrained`, or from a Hub repo id ``owner/name``;
        with no argument, the trained ``demo`` checkpoint bundled in the package
        (:data:`~semantichuman_hd.hub.BUNDLED_MODEL_DIR`: fp16 weights, loaded as float32 unless
        ``dtype`` says otherwise; no network).

        A repo id is fetched with ``huggingface_hub.snapshot_download`` (honouring ``HF_HOME``,
        ``HF_HUB_OFFLINE``, ``cache_dir``, ``revision``, ``token``, ``local_files_only``,
        ``force_download``) and loaded from the local snapshot, because diffusers refuses third-party
        component classes for Hub repo ids. Only safetensors weights, JSON configs and the model card are
        fetched. Other keyword arguments (``variant``, ``dtype``/``torch_dtype``, a component to use
        instead of the saved one, ...) go to ``DiffusionPipeline.from_pretrained``.

        Before loading, the folder is checked (:func:`semantichuman_hd.hub.check_pipeline_folder`): each
        component must name exactly the class this pipeline loads for it (nothing is imported on the
        folder's word), every weights file must be a valid safetensors file with the SHA-256 recorded in
        ``weights_sha256.json`` at saving, and hold exactly the tensors its component needs. A folder
        without that manifest (e.g. written by another tool) is refused unless
        ``trust_unverified_weights=True`` is passed. Pickled weights are never loaded
        (``use_safetensors=False`` is refused).
        """
        if pretrained_model_name_or_path is None:
            import torch

            pretrained_model_name_or_path = bundled_model_folder()
            kwargs.setdefault("variant", BUNDLED_VARIANT)
            kwargs.setdefault("dtype", torch.float32)
        path = prepare_pretrained_folder(cls, pretrained_model_name_or_path, kwargs)
        pipeline = super().from_pretrained(str(path), **kwargs)
        pipeline.register_to_config(_name_or_path=os.fspath(pretrained_model_name_or_path))
        return pipeline

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """Save the pipeline as ``DiffusionPipeline.save_pretrained`` does (``model_index.json`` and one folder
        per component with ``config.json`` and safetensors weights, ``.<variant>.safetensors`` for a
        ``variant``), plus ``weights_sha256.json`` and, when the folder has none, a model card ``README.md``.

        ``safe_serialization`` must be True: no pickles are written. With ``push_to_hub=True`` the folder
        is then uploaded to ``kwargs["repo_id"]`` (default: the folder's name), with ``commit_message``,
        ``private``, ``create_pr`` and ``token`` from ``kwargs``.
        """
        check_safe_serialization(safe_serialization)
        if kwargs.pop("use_flashpack", False):
            raise ValueError(
                f"`use_flashpack` is not supported by {type(self).__name__}.save_pretrained: weights are written as safetensors only."
            )
        super().save_pretrained(save_directory, safe_serialization=True, variant=variant, max_shard_size=max_shard_size)
        if push_to_hub:
            upload_saved_pipeline(self, save_directory, variant=variant, **kwargs)
        else:
            finish_pipeline_folder(save_directory, self, variant=variant)

    def push_to_hub(
        self,
        repo_id: str,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        create_pr: bool = False,
        safe_serialization: bool = True,
        variant: str | None = None,
        subfolder: str | None = None,
    ):
        """Upload the pipeline to the Hub repo ``repo_id`` (created if needed) in one commit:
        ``model_index.json``, ``weights_sha256.json``, each component's ``config.json`` and safetensors
        weights, and a model card ``README.md`` whose usage loads ``repo_id`` (a card already in the repo
        is left as it is; none is written under a ``subfolder``).

        Same arguments as diffusers' ``PushToHubMixin.push_to_hub``, whose generic card would advertise
        ``DiffusionPipeline.from_pretrained`` (which cannot load this pipeline). Returns the ``CommitInfo``.
        """
        check_safe_serialization(safe_serialization)
        return push_pipeline_to_hub(
            self, repo_id, commit_message=commit_message, private=private, token=token, create_pr=create_pr, variant=variant, subfolder=subfolder
        )
