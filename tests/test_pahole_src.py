"""pahole source checkouts: built with cmake (embedded libbpf on), cached by content.

Uses a tiny real cmake project shaped like dwarves (pahole.c, a shared libdwarves,
lib/bpf/src) instead of the dwarves sources, which this machine cannot fetch.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.builds.fetch import fetch_pahole
from harness.errors import CommandError, ConfigError
from harness.plan import pahole
from harness.plan.matrix import resolve_pahole as plan_pahole


def resolve_pahole(spec: str, cache: Path) -> pahole.Pahole:
    """The checkout's pahole as the plan has it, then fetched (built) as the fetch stage does."""
    return fetch_pahole(plan_pahole(spec, cache), cache, print)

CMAKE = """cmake_minimum_required(VERSION 3.10)
project(fake_pahole C)
option(LIBBPF_EMBEDDED "Use the embedded libbpf" OFF)
if(NOT LIBBPF_EMBEDDED)
  message(FATAL_ERROR "configure with -DLIBBPF_EMBEDDED=ON")
endif()
# As dwarves does: unless told not to, the configure step updates the submodules in place.
option(GIT_SUBMODULE "Check submodules during build" ON)
if(GIT_SUBMODULE)
  file(WRITE "${PROJECT_SOURCE_DIR}/lib/bpf/SUBMODULE-RESET" "git submodule update --init")
endif()
add_definitions(-D_GNU_SOURCE -DDWARVES_MAJOR_VERSION=1)
add_definitions(-D_GNU_SOURCE -DDWARVES_MINOR_VERSION=99)
add_library(dwarves SHARED dwarves.c)
add_executable(pahole pahole.c)
target_link_libraries(pahole dwarves)
"""
PAHOLE_C = """#include <stdio.h>
#include <string.h>
const char *dwarves_version(void);
int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--supported_btf_features"))
        puts("encode_force,var,float,decl_tag,type_tag,enum64,optimized_func,"
             "consistent_func,decl_tag_kfuncs,reproducible_build,distilled_base");
    else
        puts(dwarves_version());
    return 0;
}
"""


DWARVES_C = """#define S(x) #x
#define V(a, b) "v" S(a) "." S(b)
const char *dwarves_version(void) { return V(DWARVES_MAJOR_VERSION, DWARVES_MINOR_VERSION); }
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    src = tmp_path / "pahole"
    (src / "lib/bpf/src").mkdir(parents=True)
    (src / "CMakeLists.txt").write_text(CMAKE)
    (src / "pahole.c").write_text(PAHOLE_C)
    (src / "dwarves.c").write_text(DWARVES_C)
    return src


def test_checkout_is_built_probed_and_labelled(checkout: Path, tmp_path: Path) -> None:
    p = resolve_pahole(str(checkout), tmp_path / "cache")
    assert (p.version, p.code, p.source) == ("1.99", 199, checkout)
    assert "distilled_base" in p.features
    assert p.label == f"pahole1.99-src{p.build[:6]}" and p.spec == str(checkout)
    assert p.given == str(checkout)
    assert p.identity == f"1.99+src.{p.build}"
    # The build dir was renamed into the cache: the shared library is still found ($ORIGIN).
    assert p.path.is_relative_to(tmp_path / "cache/pahole")
    # The user's checkout is never written (no submodule update resetting their lib/bpf).
    assert not (checkout / "lib/bpf/SUBMODULE-RESET").exists()


def test_checkout_is_cached_until_a_source_changes(checkout: Path, tmp_path: Path) -> None:
    first = resolve_pahole(str(checkout), tmp_path / "cache")
    built_at = first.path.stat().st_mtime_ns
    again = resolve_pahole(str(checkout), tmp_path / "cache")
    assert again == first and again.path.stat().st_mtime_ns == built_at
    cmake = checkout / "CMakeLists.txt"
    cmake.write_text(cmake.read_text().replace("MINOR_VERSION=99", "MINOR_VERSION=98"))
    changed = resolve_pahole(str(checkout), tmp_path / "cache")
    assert changed.build != first.build and changed.version == "1.98"


def test_checkout_without_embedded_libbpf_names_the_fix(checkout: Path, tmp_path: Path) -> None:
    os.rmdir(checkout / "lib/bpf/src")
    with pytest.raises(ConfigError, match="submodule update --init"):
        resolve_pahole(str(checkout), tmp_path / "cache")


def test_failed_build_keeps_its_log_and_caches_nothing(checkout: Path, tmp_path: Path) -> None:
    (checkout / "pahole.c").write_text("this is not C\n")
    with pytest.raises(CommandError) as err:
        resolve_pahole(str(checkout), tmp_path / "cache")
    assert err.value.log is not None and "not C" in err.value.log.read_text()
    left = [p.name for p in (tmp_path / "cache/pahole").iterdir()]
    assert not [n for n in left if n.startswith(".pahole-src")
                or (n.startswith("src-") and not n.endswith(".lock"))], left


def test_plan_knows_a_checkout_before_it_is_built(checkout: Path, tmp_path: Path) -> None:
    planned = plan_pahole(str(checkout), tmp_path / "cache")
    assert (planned.version, planned.digest, planned.path.exists()) == ("1.99", "", False)
    assert planned.label == f"pahole1.99-src{planned.build[:6]}"
    assert fetch_pahole(planned, tmp_path / "cache", print).label == planned.label


def test_a_checkout_printing_another_version_than_its_cmakelists_says_so(
        checkout: Path, tmp_path: Path) -> None:
    (checkout / "dwarves.c").write_text('const char *dwarves_version(void) { return "v1.7"; }\n')
    with pytest.raises(ConfigError, match=r"prints version 1\.7, the plan said 1\.99"):
        resolve_pahole(str(checkout), tmp_path / "cache")
