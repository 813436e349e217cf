"""Fixtures shared by the environment tests (keep additive: one small fixture per need)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def env_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """One cache folder for the whole test session, so generated games/indexes are built once."""
    return tmp_path_factory.mktemp("agentgym-cache")
