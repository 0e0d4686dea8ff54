"""Shared fixtures: one open body model, its SDF prior and deformer per test session, built in a
temporary cache directory so the tests never touch the user's cache."""

from __future__ import annotations

import os

import pytest

from semantichuman_hd.paths import CACHE_ENV_VAR


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    previous = os.environ.get(CACHE_ENV_VAR)
    os.environ[CACHE_ENV_VAR] = str(tmp_path_factory.mktemp("semantichuman_cache"))
    yield os.environ[CACHE_ENV_VAR]
    if previous is None:
        os.environ.pop(CACHE_ENV_VAR, None)
    else:
        os.environ[CACHE_ENV_VAR] = previous


@pytest.fixture(scope="session")
def open_body(isolated_cache):
    from semantichuman_hd.body.body_model import BodyModel

    return BodyModel.open()


@pytest.fixture(scope="session")
def open_body_deformer(open_body):
    from semantichuman_hd.body.deformer import InverseLBSDeformer

    return InverseLBSDeformer.from_body_model(open_body)
