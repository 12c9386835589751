"""kbtf's pytest options. The suites' hooks and fixtures live in suites/conftest.py."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kbtf", "kbtf matrix point")
    group.addoption("--arch", default=None,
                    help="architecture to build and boot (default: the host's)")
    group.addoption("--kernel-src", default=None, metavar="PATH",
                    help="kernel source tree (default: Debian's linux-source-6.12, unpacked "
                    "into the cache)")
    group.addoption("--pahole", action="append", default=None, metavar="SPEC",
                    help="pahole for kernel and modules: 'system' or a path (default: system)")
    group.addoption("--kconfig-add", action="append", default=[], metavar="FILE|CONFIG_X=v",
                    help="extra kconfig fragment or option, applied after kbtf's (repeatable)")
    group.addoption("--cache-dir", default=None, metavar="DIR",
                    help="build cache (default: $KBTF_CACHE_DIR or ~/.cache/kbtf)")
