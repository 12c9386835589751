"""./kbtf's installer (issue 32 items 24, 25): it installs python3 before it asks the arch
registry (Python) for packages, fails loudly when that yields nothing, and installs nothing
that starts a daemon (Debian's docker-registry listened on :5000 on every interface: the
registry tests unpack it into the cache instead, harness/registry.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

KBTF = Path(__file__).parent.parent / "kbtf"
# Services of the base system kbtf names as build tools (modprobe, udevadm); no network.
BASE_SERVICES = {"kmod", "udev"}


def apt_packages() -> list[str]:
    block = re.search(r"^APT_PACKAGES=\((.*?)^\)", KBTF.read_text(), re.DOTALL | re.MULTILINE)
    assert block is not None
    return block[1].split()


def test_no_package_kbtf_installs_starts_a_service() -> None:
    assert "docker-registry" not in apt_packages()
    services = {}
    for package in apt_packages():
        listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
        found = [f for f in listed.stdout.split() if re.search(
            r"systemd/system/[^/]+\.(service|socket)$|^/etc/init\.d/", f)]
        if found and package not in BASE_SERVICES:
            services[package] = found
    assert services == {}


def test_python3_comes_before_the_arch_registry_and_an_empty_list_stops_setup() -> None:
    script = KBTF.read_text()
    order = [script.index(step) for step in ("  bootstrap_python\n", "  arch_packages\n",
                                             "  setup_apt\n")]
    assert order == sorted(order)
    assert 'die "the arch registry named no packages"' in script


@pytest.mark.parametrize("broken", ["exit 1", "print()"])
def test_the_arch_list_failing_or_empty_stops_setup(tmp_path: Path, broken: str) -> None:
    # a stand-in python3 on PATH whose arch registry fails or names nothing
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\ncase \"$*\" in *ensurepip*) exit 0;; esac\n"
                                  + ("exit 1\n" if broken == "exit 1" else "echo\n"))
    (fake / "python3").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin", "KBTF_SETUP_DRY_RUN": "1"}
    done = subprocess.run(["bash", str(KBTF), "true"], env=env, capture_output=True, text=True)
    assert done.returncode == 1 and "kbtf-setup:" in done.stderr
