"""Every test's precision cache is its own temporary file, never the user's
(cvae.core.precision_probe.CACHE_ENV, spelled out here so that tests which need no
torch import none; Ray workers and subprocesses inherit it)."""
from __future__ import annotations

import pytest

PRECISION_CACHE_ENV = "CVAE_PRECISION_CACHE"


@pytest.fixture(autouse=True)
def _precision_cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv(PRECISION_CACHE_ENV, str(tmp_path_factory.mktemp("precision-cache") / "precision.json"))
