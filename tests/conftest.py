"""Fixtures shared by kbtf's own tests (no kernel, no VM)."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture
def data() -> Path:
    """Directory of captured logs and configs."""
    return Path(__file__).parent / "data"


def selftests_makefile(bpf: Path) -> None:
    """Write into ``bpf`` (a tools/testing/selftests/bpf) a Makefile holding only the test
    list rule of Debian's 6.12.118 tree (captured: tests/data/selftests-Makefile-*)."""
    captured = Path(__file__).parent / "data/selftests-Makefile-6.12.118-list-rule.txt"
    rule = captured.read_text().split(":", 1)[1]
    bpf.mkdir(parents=True, exist_ok=True)
    (bpf / "Makefile").write_text(f"tests.h: prog_tests/*.c\n{rule}")
