"""dkms.conf read without running it where it is plain assignments, else sourced by bash
confined, as dkms sources it (kernelver, kernel_source_dir and arch set), and the
BUILD_EXCLUSIVE_* rule dkms applies quoted. The files here are shaped like Debian's
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


def _evaluate(conf: Path, release: str, kernel: Path, arch: str, scratch: Path
              ) -> dkmsconf.DkmsConf:
    from harness.builds.dkmsbuild import evaluate

    scratch.mkdir(exist_ok=True)
    return evaluate(conf, release, kernel, arch, scratch)


def test_a_rule_the_file_sets_from_the_kernel_config(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    conf = _conf(tmp_path / "pkg", FROM_CONFIG)
    assert dkmsconf.read(conf) is None  # bash beyond assignments: left to the build
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    (kernel / ".config").write_text("CONFIG_NET=y\n")
    seen = _evaluate(conf, "6.12.117", kernel, "x86_64", tmp_path / "s")
    assert (seen.ident, seen.modules) == ("loopcam/1.2", ("loopcam",))
    assert seen.make == (f"make KERNEL_DIR={kernel} all",)
    assert seen.excluded_by == (
        'BUILD_EXCLUSIVE_KERNEL="REQUIRES CONFIG_VIDEO_DEV" does not match 6.12.117')
    (kernel / ".config").write_text("CONFIG_VIDEO_DEV=m\n")
    assert _evaluate(conf, "6.12.117", kernel, "x86_64", tmp_path / "s").excluded_by == ""


def test_make_variable_subdirectory_arch_and_config_rules(tmp_path: Path) -> None:
    conf = dkmsconf.read(_conf(tmp_path, SUBDIR), "6.1.0-40-amd64", "/k", "x86_64")
    assert conf is not None and conf.make == ("make VER=6.1.0-40-amd64 KERNEL_SRC=/k",)
    assert conf.locations == ("drivers/net/tunnel",)
    kernel = tmp_path / "kernel"
    kernel.mkdir()

    def excluded(arch: str, config: str) -> str:
        (kernel / ".config").write_text(config)
        return _evaluate(tmp_path / "dkms.conf", "6.1.0", kernel, arch,
                         tmp_path / "s").excluded_by

    assert excluded("x86_64", "CONFIG_NET=y\n") == ""
    assert "does not match s390x" in excluded("s390x", "CONFIG_NET=y\n")
    assert "CONFIG_NET is not set" in excluded("x86_64", "")
    assert "CONFIG_TUNNEL_IN_TREE is set" in excluded(
        "x86_64", "CONFIG_NET=y\nCONFIG_TUNNEL_IN_TREE=m\n")


def test_the_rule_quoted_is_the_one_dkms_applies(tmp_path: Path) -> None:
    # bash's =~ is unanchored and knows POSIX classes: Python's re.match did neither, and
    # quoted rules dkms never applied (issue 32 item 13)
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    for rule, release, excluded in (("12", "6.12.117", False),
                                    ("^6\\.1[[:digit:]]", "6.12.117", False),
                                    ("^6\\.1[[:digit:]]", "6.1.0-40-amd64", True)):
        conf = _conf(tmp_path, f'PACKAGE_NAME="x"\nPACKAGE_VERSION="1"\n'
                     f'BUILT_MODULE_NAME[0]="x"\nBUILD_EXCLUSIVE_KERNEL="{rule}"\n')
        why = _evaluate(conf, release, kernel, "x86_64", tmp_path / "s").excluded_by
        assert bool(why) == excluded, (rule, release, why)


def test_a_dkms_conf_never_runs_at_collection_and_only_confined_in_the_build(
        tmp_path: Path) -> None:
    from harness.plan.usermod import parse_dkms

    victim = tmp_path / "victim"
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    conf = _conf(pkg, f'PACKAGE_NAME="x"\nPACKAGE_VERSION="1"\nBUILT_MODULE_NAME[0]="x"\n'
                      f'touch {victim}\n')
    assert parse_dkms(str(pkg), tmp_path).dkms is not None
    assert not victim.exists()  # collection read it (bash -n, then plainly): nothing ran
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    assert _evaluate(conf, "6.12.117", kernel, "x86_64", tmp_path / "s").name == "x"
    assert not victim.exists()  # sourced confined: only the scratch dir is writable


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


@pytest.mark.parametrize("lines", [
    'PACKAGE_NAME=foo;', "BUILT_MODULE_NAME=(m)", "PACKAGE_NAME=1>/dev/null",
    "PACKAGE_NAME=~/src", 'PACKAGE_NAME="fo\\$o"', "PACKAGE_NAME=foo#bar",
    'PACKAGE_NAME="$1"', "PACKAGE_NAME='a\\\nb'", '"PACKAGE_NAME=foo"',
    "# a comment \\\nPACKAGE_VERSION=2", "PACKAGE_NAME=foo\r", 'PACKAGE_NAME="$HOME"',
    "PACKAGE_NAME=$'foo'", "PACKAGE_NAME=\\$V", 'PACKAGE_NAME="${PACKAGE_VERSION}x"',
    "PACKAGE_NAME=x  # plain comment", "PACKAGE_NAME='it''s'",
    "BUILT_MODULE_NAME[010]=z", "BUILT_MODULE_NAME[00]=z", "PACKAGE_NAME=1\x0c#c",
    "RANDOM=5\nPACKAGE_NAME=$RANDOM", "X\u00e9=1\nPACKAGE_NAME=$X\u00e9",
    "BUILT_MODULE_NAME[\u0660]=z",
])
def test_read_without_bash_is_bash_or_nothing(tmp_path: Path, lines: str) -> None:
    """The review's cases (issue 32 item 9): what kbtf reads without bash is what bash
    gives, or it leaves the file to the sandboxed bash (None); never another value."""
    text = ('PACKAGE_NAME="p"\nPACKAGE_VERSION="1"\nBUILT_MODULE_NAME[0]="m"\n' + lines + "\n")
    conf = _conf(tmp_path, text)
    try:
        plain = dkmsconf.read(conf)
    except ConfigError:
        plain = None
    if plain is None:
        return
    bash = _evaluate(conf, "", tmp_path, "x86_64", tmp_path / "s")
    assert (plain.name, plain.version, plain.modules) == (bash.name, bash.version, bash.modules)
