"""kconfig model: parse, merge, render, validate after olddefconfig."""

from pathlib import Path

import pytest

from harness import kconfig
from harness.errors import ConfigError


def test_parse_values_comments_and_unset() -> None:
    opts = kconfig.parse(
        "# a comment\nCONFIG_A=y   # why A\n# CONFIG_B is not set\nCONFIG_S=\"x y\"\nCONFIG_N=42\n",
        "f.config",
    )
    assert {k: o.value for k, o in opts.items()} == {
        "CONFIG_A": "y", "CONFIG_B": "n", "CONFIG_S": '"x y"', "CONFIG_N": "42"}
    assert opts["CONFIG_A"].source == "f.config"


def test_parse_rejects_garbage_naming_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"f.config:2: not a kconfig line"):
        kconfig.parse("CONFIG_A=y\nDEBUG_INFO_BTF=y\n", "f.config")


def test_merge_conflict_names_both_files() -> None:
    a = kconfig.parse("CONFIG_X=y\n", "a.config")
    b = kconfig.parse("# CONFIG_X is not set\n", "b.config")
    with pytest.raises(ConfigError, match=r"CONFIG_X=y in a.config but CONFIG_X=n in b.config"):
        kconfig.merge([a, b])


def test_merge_same_value_is_fine_and_user_overrides_win() -> None:
    a = kconfig.parse("CONFIG_X=y\nCONFIG_Y=y\n", "a.config")
    b = kconfig.parse("CONFIG_X=y\n", "b.config")
    merged = kconfig.merge([a, b])
    user = kconfig.parse_user_item("CONFIG_Y=n")
    final = kconfig.apply_overrides(merged, [user])
    assert final["CONFIG_Y"].value == "n"
    assert final["CONFIG_Y"].source == "command line"


def test_user_item_must_be_file_or_assignment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a file and not CONFIG_X=value"):
        kconfig.parse_user_item(str(tmp_path / "nope.config"))
    frag = tmp_path / "u.config"
    frag.write_text("CONFIG_Z=m\n")
    assert kconfig.parse_user_item(str(frag))["CONFIG_Z"].value == "m"


def test_render_roundtrips() -> None:
    opts = kconfig.parse("CONFIG_B=y\n# CONFIG_A is not set\n", "f")
    text = kconfig.render(opts)
    assert text == "# CONFIG_A is not set\nCONFIG_B=y\n"
    assert kconfig.parse(text, "g").keys() == opts.keys()


def test_missing_after_tells_dropped_from_unknown() -> None:
    requested = kconfig.parse(
        "CONFIG_DEBUG_INFO_BTF_MODULES=y\nCONFIG_DEBUG_INFO_BTFF=y\nCONFIG_MODULES=y\n"
        "# CONFIG_MODVERSIONS is not set\n", "btf.config")
    final = kconfig.parse("CONFIG_MODULES=y\n# CONFIG_DEBUG_INFO_BTF_MODULES is not set\n",
                          ".config")
    known = kconfig.kconfig_symbols(["config DEBUG_INFO_BTF_MODULES\n\tbool\nmenuconfig MODULES\n"])
    dropped = kconfig.missing_after(requested, final, known)
    assert [d.option.name for d in dropped] == ["CONFIG_DEBUG_INFO_BTFF",
                                                "CONFIG_DEBUG_INFO_BTF_MODULES"]
    unknown, btf = (d.describe() for d in dropped)
    assert "unknown symbol" in unknown
    assert btf.startswith("DEBUG_INFO_BTF_MODULES=y (from btf.config) dropped")
    assert "pahole missing or < 1.19" in btf


def test_project_fragments_parse_and_merge_without_conflict() -> None:
    root = Path(__file__).resolve().parent.parent / "kconfigs"
    names = ("base.config", "btf.config", "x86_64.config")
    merged = kconfig.merge(kconfig.parse_file(root / n) for n in names)
    for opt in ("CONFIG_DEBUG_INFO_BTF_MODULES", "CONFIG_IKHEADERS", "CONFIG_BLOCK",
                "CONFIG_ACPI"):
        assert merged[opt].value == "y"
    assert merged["CONFIG_MODVERSIONS"].value == "n"
    assert merged["CONFIG_MODULE_ALLOW_BTF_MISMATCH"].value == "y"
    prime = kconfig.apply_overrides(merged, [kconfig.parse_file(root / "prime.config")])
    assert prime["CONFIG_CONFIGFS_FS"].value == "y"
    assert prime["CONFIG_MODULE_ALLOW_BTF_MISMATCH"].value == "n"
    refuse = kconfig.apply_overrides(merged, [kconfig.parse_file(root / "refuse.config")])
    assert refuse["CONFIG_MODULE_ALLOW_BTF_MISMATCH"].value == "n"
