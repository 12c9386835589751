"""kheaders (CONFIG_IKHEADERS): the running kernel exposes its own headers, and they match
the running kernel's configuration.
"""

from __future__ import annotations

import re

from harness.guest import GuestSession

ARCHIVE = "/sys/kernel/kheaders.tar.xz"


def autoconf_defines(dot_config: str) -> set[tuple[str, str]]:
    """The #defines include/generated/autoconf.h holds for a .config (y, m, values)."""
    out = set()
    for name, value in re.findall(r"^(CONFIG_\w+)=(.*)$", dot_config, re.MULTILINE):
        if value == "y":
            out.add((name, "1"))
        elif value == "m":
            out.add((f"{name}_MODULE", "1"))
        else:
            out.add((name, value))
    return out


def test_kheaders_archive_exists(guest: GuestSession) -> None:
    assert guest.run("test", "-s", ARCHIVE).ok, f"{ARCHIVE} missing: is CONFIG_IKHEADERS on?"


def test_kheaders_autoconf_matches_running_config(guest: GuestSession) -> None:
    res = guest.run(f"rm -rf /tmp/kh && mkdir -p /tmp/kh && tar -xJf {ARCHIVE} -C /tmp/kh "
                    "&& cat /tmp/kh/include/generated/autoconf.h", timeout=300)
    assert res.ok, f"cannot extract {ARCHIVE}: {res.stderr.strip()}"
    headers = set(re.findall(r"^#define (CONFIG_\w+) (.*)$", res.stdout, re.MULTILINE))
    config = guest.run("zcat /proc/config.gz")
    assert config.ok, "/proc/config.gz unreadable: is CONFIG_IKCONFIG_PROC on?"
    running = autoconf_defines(config.stdout)
    assert ("CONFIG_IKHEADERS", "1") in running and ("CONFIG_DEBUG_INFO_BTF", "1") in running
    only_headers, only_running = sorted(headers - running), sorted(running - headers)
    assert not only_headers and not only_running, (
        f"kheaders autoconf.h and /proc/config.gz disagree: only in headers "
        f"{only_headers[:10]}, only in running config {only_running[:10]}")
