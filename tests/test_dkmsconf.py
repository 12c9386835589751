"""dkms.conf read as dkms reads it (sourced by bash with kernelver, kernel_source_dir and
arch set), and its BUILD_EXCLUSIVE_* rules applied. The files here are shaped like Debian's
v4l2loopback-dkms and openvpn-dco-dkms ones: a rule set from the kernel's .config, MAKE as
a plain variable, a module in a subdirectory."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.plan import dkmsconf

FROM_CONFIG = """PACKAGE_NAME="loopcam"
PACKAGE_VERSION="1.2"
if [ -f $kernel_source_dir/.config ]; then
    . $kernel_source_dir/.config
    if [ "${CONFIG_VIDEO_DEV:-n}" = "n" ]; then
        BUILD_EXCLUSIVE_KERNEL="REQUIRES CONFIG_VIDEO_DEV"
    fi
fi
MAKE[0]="make KERNEL_DIR=${kernel_source_dir} all"
BUILT_MODULE_NAME[0]="$PACKAGE_NAME"
DEST_MODULE_LOCATION[0]="/extra"
"""
SUBDIR = """PACKAGE_NAME="tunnel"
PACKAGE_VERSION="0.0+git1"
MAKE="make VER=${kernelver} KERNEL_SRC=${kernel_source_dir}"
BUILT_MODULE_NAME[0]="tunnel-v2"
BUILT_MODULE_LOCATION[0]="drivers/net/tunnel"
BUILD_EXCLUSIVE_ARCH="x86_64|aarch64"
BUILD_EXCLUSIVE_CONFIG="CONFIG_NET !CONFIG_TUNNEL_IN_TREE"
"""


def _conf(tmp_path: Path, text: str) -> Path:
    (tmp_path / "dkms.conf").write_text(text)
    return tmp_path / "dkms.conf"


def test_a_rule_the_file_sets_from_the_kernel_config(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    conf = _conf(tmp_path / "pkg", FROM_CONFIG)
    plain = dkmsconf.parse(conf)
    assert (plain.ident, plain.modules, plain.exclusive) == ("loopcam/1.2", ("loopcam",), {})
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    (kernel / ".config").write_text("CONFIG_NET=y\n")
    seen = dkmsconf.parse(conf, "6.12.117", str(kernel), "x86_64")
    assert seen.make == (f"make KERNEL_DIR={kernel} all",)
    assert dkmsconf.exclusion(seen, "6.12.117", "x86_64", {}) == (
        'BUILD_EXCLUSIVE_KERNEL="REQUIRES CONFIG_VIDEO_DEV" does not match 6.12.117')
    (kernel / ".config").write_text("CONFIG_VIDEO_DEV=m\n")
    assert dkmsconf.parse(conf, "6.12.117", str(kernel), "x86_64").exclusive == {}


def test_make_variable_subdirectory_arch_and_config_rules(tmp_path: Path) -> None:
    conf = dkmsconf.parse(_conf(tmp_path, SUBDIR), "6.1.0-40-amd64", "/k", "x86_64")
    assert conf.make == ("make VER=6.1.0-40-amd64 KERNEL_SRC=/k",)
    assert conf.locations == ("drivers/net/tunnel",)
    assert dkmsconf.exclusion(conf, "6.1.0", "x86_64", {"CONFIG_NET": "y"}) is None
    assert "does not match s390x" in (dkmsconf.exclusion(conf, "6.1.0", "s390x", {}) or "")
    assert "CONFIG_NET is not set" in (dkmsconf.exclusion(conf, "6.1.0", "x86_64", {}) or "")
    assert "CONFIG_TUNNEL_IN_TREE is m" in (dkmsconf.exclusion(
        conf, "6.1.0", "x86_64", {"CONFIG_NET": "y", "CONFIG_TUNNEL_IN_TREE": "m"}) or "")


@pytest.mark.parametrize(("text", "says"), [
    ('PACKAGE_NAME="x"\nMAKE[0]="make $(\n', "bash cannot parse it"),
    ('PACKAGE_NAME="x"\nBUILT_MODULE_NAME[0]="x"\n', "no PACKAGE_VERSION"),
    ('PACKAGE_NAME="x"\nPACKAGE_VERSION="1"\n', "no BUILT_MODULE_NAME[0]"),
])
def test_bad_dkms_conf_is_a_one_line_error(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says.replace("[", r"\[").replace("]", r"\]")):
        dkmsconf.parse(_conf(tmp_path, text))


def test_dkms_specs_name_and_refuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import provision
    from harness.plan.usermod import parse_dkms

    monkeypatch.setattr(provision, "package_version",
                        lambda cache, suite, pkg: {"loopcam-dkms": "1.2-1"}.get(pkg))
    monkeypatch.setattr(provision, "package_names",
                        lambda cache, suite: ["loopcam-dkms", "loopcam-utils", "bash"])
    spec = parse_dkms("loopcam-dkms", tmp_path)
    assert (spec.name, spec.spec) == ("loopcam-dkms", "bookworm:loopcam-dkms")
    assert spec.path == tmp_path / "dkms" / "bookworm-loopcam-dkms_1.2-1"
    assert parse_dkms("trixie:loopcam-dkms", tmp_path).name == "trixie-loopcam-dkms"
    with pytest.raises(ConfigError, match=r"no package 'loopcam-dkm' \(near: loopcam-dkms"):
        parse_dkms("loopcam-dkm", tmp_path)
    with pytest.raises(ConfigError, match=r"no dkms\.conf in it"):
        parse_dkms(str(tmp_path), tmp_path)
    (tmp_path / "pkg").mkdir()
    _conf(tmp_path / "pkg", SUBDIR)
    mine = parse_dkms(str(tmp_path / "pkg"), tmp_path)
    assert (mine.name, mine.dkms is not None) == ("pkg", True)
