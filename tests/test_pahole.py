"""pahole version and feature parsing."""

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
