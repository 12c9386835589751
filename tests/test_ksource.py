"""Kernel source discovery and validation."""

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.plan import ksource

MAKEFILE = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby Opossum\n"


def test_makefile_version() -> None:
    assert ksource.makefile_version(MAKEFILE) == "6.12.117"
    assert ksource.makefile_version(MAKEFILE.replace("EXTRAVERSION =", "EXTRAVERSION = -rc3")) \
        == "6.12.117-rc3"


def test_missing_tree(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such directory; pass a kernel source tree"):
        ksource.local_source(tmp_path / "nope")


def test_tree_without_makefile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no Makefile/Kconfig, not a kernel source tree"):
        ksource.local_source(tmp_path)


def test_tree_configured_in_place(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(MAKEFILE)
    (tmp_path / "Kconfig").write_text("")
    (tmp_path / ".config").write_text("")
    with pytest.raises(ConfigError, match="make mrproper"):
        ksource.local_source(tmp_path)


def test_tree_identity_changes_with_content(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(MAKEFILE)
    (tmp_path / "Kconfig").write_text("")
    first = ksource.local_source(tmp_path)
    assert first.version == "6.12.117" and first.label == "src6.12.117"
    (tmp_path / "Kconfig").write_text("config FOO\n\tbool\n")
    assert ksource.local_source(tmp_path).identity != first.identity
