"""Fixtures shared by kbtf's own tests (no kernel, no VM)."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def data() -> Path:
    """Directory of captured logs and configs."""
    return Path(__file__).parent / "data"
