"""Kernel source discovery and validation."""

import subprocess
import time
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


def git_tree(path: Path) -> Path:
    """A committed kernel-shaped git tree at ``path``."""
    path.mkdir(parents=True)
    (path / "Makefile").write_text(MAKEFILE)
    (path / "Kconfig").write_text("config FOO\n\tbool\n")
    for argv in (["init", "-q"], ["add", "."],
                 ["-c", "user.name=k", "-c", "user.email=k@k", "commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(path), *argv], check=True)
    return path


def test_git_identity_writes_nothing_and_ignores_diff_drivers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = git_tree(tmp_path / "linux")
    index = (tree / ".git/index").read_bytes()
    time.sleep(0.01)
    (tree / "Kconfig").write_text("config FOO\n\tbool\n")  # same content, new mtime
    clean = ksource.local_source(tree).identity
    assert (tree / ".git/index").read_bytes() == index, "git rewrote the user's index"
    # A diff driver that prints the same for every edit must not make edits hash alike.
    driver = tmp_path / "same-diff"
    driver.write_text("#!/bin/sh\necho same\n")
    driver.chmod(0o755)
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(driver))
    (tree / "Kconfig").write_text("config FOO\n\tbool\nconfig BAR\n\tbool\n")
    one = ksource.local_source(tree).identity
    (tree / "Kconfig").write_text("config FOO\n\tbool\nconfig BAZ\n\tbool\n")
    assert len({clean, one, ksource.local_source(tree).identity}) == 3


def test_two_checkouts_at_one_commit_are_two_builds(tmp_path: Path) -> None:
    a = git_tree(tmp_path / "a")
    b = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(a), str(b)], check=True)
    assert ksource.local_source(a).identity != ksource.local_source(b).identity
