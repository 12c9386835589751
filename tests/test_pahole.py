"""pahole version and feature parsing."""

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.plan import pahole


@pytest.mark.parametrize(("text", "version", "code"), [
    ("v1.24\n", "1.24", 124), ("v1.30", "1.30", 130), ("v1.32\n", "1.32", 132),
    ("v1.9", "1.9", 109),
])
def test_parse_version(text: str, version: str, code: int) -> None:
    assert pahole.parse_version(text) == version
    assert pahole.version_code(version) == code


def test_parse_version_garbage() -> None:
    for text in ("pahole: unrecognized option", "true (GNU coreutils) 9.1\n"):
        with pytest.raises(ConfigError, match="not a pahole"):
            pahole.parse_version(text)


def test_parse_features() -> None:
    text = "encode_force,var,float,enum64,decl_tag,type_tag,optimized_func,consistent_func," \
           "decl_tag_kfuncs,reproducible_build,distilled_base\n"
    feats = pahole.parse_features(text)
    assert "distilled_base" in feats and len(feats) == 11


def test_missing_tool_names_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import proc
    from harness.errors import ToolMissing

    monkeypatch.setattr("shutil.which", lambda name, path=None: None)
    with pytest.raises(ToolMissing, match=r"missing tool 'pahole': install it with "
                       r"apt-get install dwarves"):
        proc.require_tool("pahole")


def test_paholes_of_one_version_get_distinct_labels_and_point_ids() -> None:
    from harness.arches import get_arch
    from harness.plan.kernelreq import KernelRequest
    from harness.plan.ksource import KernelSource
    from harness.plan.matrix import MatrixPoint
    from harness.plan.pahole import Pahole, distinct

    system = Pahole(Path("/usr/bin/pahole"), "1.30", (), digest="aaaaaa11", given="system")
    debian = Pahole(Path("/c/pahole/debian-1.30/pahole"), "1.30", (), digest="bbbbbb22",
                    given="debian:1.30")
    same_binary = Pahole(Path("/usr/bin/pahole"), "1.30", (), digest="aaaaaa11",
                         given="/usr/bin/pahole")
    other = Pahole(Path("/p/1.32"), "1.32", (), digest="cccccc33")
    named = distinct([system, debian, same_binary, other])
    assert [p.label for p in named] == ["pahole1.30-aaaaaa", "pahole1.30-bbbbbb", "pahole1.32"]
    src = KernelSource(Path("/s"), "6.12.117", "deb:x", "debian6.12.117", "debian:6.12")
    points = [MatrixPoint(KernelRequest(get_arch("x86_64"), src, p), p) for p in named[:2]]
    assert len({pt.id for pt in points}) == 2 and len({pt.kernel_id for pt in points}) == 2
    # The kernel's 1.30 with the other 1.30 for modules: the id names the module pahole.
    mixed = MatrixPoint(KernelRequest(get_arch("x86_64"), src, named[0]), named[1])
    assert mixed.id.endswith("-modpahole1.30-bbbbbb")
