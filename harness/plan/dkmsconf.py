"""DKMS packages (--dkms): what a dkms.conf says, read without running it, and whether its
BUILD_EXCLUSIVE_* rules let a kernel build it: the file sourced by bash with the variables
dkms sets, as dkms itself does (it is a bash snippet: v4l2loopback's sets its rule from the
kernel's .config). The build is the real dkms's (build/dkmsbuild.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.errors import ConfigError

SYNTAX_TIMEOUT = 30


@dataclass(frozen=True)
class DkmsConf:
    """The parts of a dkms.conf kbtf reads (dkms itself reads the rest)."""

    path: Path
    name: str  # PACKAGE_NAME
    version: str  # PACKAGE_VERSION
    modules: tuple[str, ...]  # BUILT_MODULE_NAME[n]
    locations: tuple[str, ...]  # BUILT_MODULE_LOCATION[n] ("" where unset)
    make: tuple[str, ...]  # MAKE[n] as written
    exclusive: dict[str, str] = field(default_factory=dict)  # BUILD_EXCLUSIVE_* as written

    @property
    def ident(self) -> str:
        """name/version, as dkms names it."""
        return f"{self.name}/{self.version}"


# Sources a dkms.conf the way dkms does (with kernelver, kernel_source_dir and arch set)
# and prints the variables kbtf reads, NUL-separated.
_EVAL = r"""
kernelver="$1" kernel_source_dir="$2" arch="$3"
. "$4" >/dev/null 2>&1
for n in PACKAGE_NAME PACKAGE_VERSION BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_ARCH \
         BUILD_EXCLUSIVE_CONFIG; do printf '%s=%s\0' "$n" "${!n}"; done
for i in "${!BUILT_MODULE_NAME[@]}"; do
    printf 'BUILT_MODULE_NAME[%s]=%s\0' "$i" "${BUILT_MODULE_NAME[$i]}"
    printf 'BUILT_MODULE_LOCATION[%s]=%s\0' "$i" "${BUILT_MODULE_LOCATION[$i]}"
done
for i in "${!MAKE[@]}"; do printf 'MAKE[%s]=%s\0' "$i" "${MAKE[$i]}"; done
"""


def parse(path: Path, kernelver: str = "", kernel_source_dir: str = "", arch: str = ""
          ) -> DkmsConf:
    """dkms.conf ``path`` evaluated as dkms evaluates it for kernel ``kernelver`` (whose
    build dir is ``kernel_source_dir``) of ``arch``; without a kernel, what it says of
    itself. Raises ConfigError (one line) if bash cannot parse it, or it names no package,
    version or module."""
    check = proc.run(["bash", "-n", path], timeout=SYNTAX_TIMEOUT, check=False)
    if check.returncode != 0:
        first = (check.stderr.strip().splitlines() or ["?"])[0]
        raise ConfigError(f"--dkms {path}: bash cannot parse it: {first}")
    out = proc.run(["bash", "-c", _EVAL, "dkms.conf", kernelver, kernel_source_dir, arch,
                    path], timeout=SYNTAX_TIMEOUT, check=False, cwd=path.parent)
    values = dict(item.split("=", 1) for item in out.stdout.split("\0") if "=" in item)
    modules = {int(m[1]): v for k, v in values.items()
               if (m := re.fullmatch(r"BUILT_MODULE_NAME\[(\d+)\]", k))}
    missing = [n for n in ("PACKAGE_NAME", "PACKAGE_VERSION") if not values.get(n)]
    if missing or not modules.get(0):
        what = ", ".join(missing + ([] if modules.get(0) else ["BUILT_MODULE_NAME[0]"]))
        raise ConfigError(f"--dkms {path}: no {what}: not a dkms.conf dkms can build")
    indexes = sorted(modules)
    make = {int(m[1]): v for k, v in values.items() if (m := re.fullmatch(r"MAKE\[(\d+)\]", k))}
    return DkmsConf(path, values["PACKAGE_NAME"], values["PACKAGE_VERSION"],
                    tuple(modules[i] for i in indexes),
                    tuple(values.get(f"BUILT_MODULE_LOCATION[{i}]", "") for i in indexes),
                    tuple(make[i] for i in sorted(make)),
                    {k: v for k, v in values.items() if k.startswith("BUILD_EXCLUSIVE_") and v})


def exclusion(conf: DkmsConf, release: str, arch: str, config: dict[str, str]) -> str | None:
    """The BUILD_EXCLUSIVE_* rule of ``conf`` that keeps it from kernel ``release`` of
    ``arch`` (uname -m) with .config ``config`` (CONFIG_X -> value), quoted, or None.
    ``conf`` must have been parsed for that kernel (the rules may depend on it)."""
    rules = conf.exclusive
    kernel = rules.get("BUILD_EXCLUSIVE_KERNEL")
    if kernel and not re.match(kernel, release):
        return f'BUILD_EXCLUSIVE_KERNEL="{kernel}" does not match {release}'
    arches = rules.get("BUILD_EXCLUSIVE_ARCH")
    if arches and not re.match(arches, arch):
        return f'BUILD_EXCLUSIVE_ARCH="{arches}" does not match {arch}'
    for item in rules.get("BUILD_EXCLUSIVE_CONFIG", "").split():
        name, want = item.lstrip("!"), not item.startswith("!")
        have = config.get(name, "n") in ("y", "m")
        if have != want:
            return (f'BUILD_EXCLUSIVE_CONFIG="{rules["BUILD_EXCLUSIVE_CONFIG"]}": {name} is '
                    f"{config.get(name, 'not set')} in this kernel")
    return None
