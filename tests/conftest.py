"""Fixtures shared by kbtf's own tests (no kernel, no VM)."""

from pathlib import Path

import pytest


@pytest.fixture
def data() -> Path:
    """Directory of captured logs and configs."""
    return Path(__file__).parent / "data"
