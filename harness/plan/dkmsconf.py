"""DKMS packages (--dkms): what a dkms.conf says, and whether its BUILD_EXCLUSIVE_* rules let
a kernel build it. A dkms.conf is a bash snippet (v4l2loopback's sets its rule from the
kernel's .config): kbtf reads it without running it (``read``) where it holds only plain
assignments, and otherwise leaves it to the sandboxed build, where ``EVAL`` sources it the way
dkms does, with the variables dkms sets, and applies dkms's own exclusion tests (bash's
``=~``, grep over .config): builds/dkmsbuild.py. The build is the real dkms's."""

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
    excluded_by: str = ""  # the BUILD_EXCLUSIVE rule dkms applies to the kernel ("" none)

    @property
    def ident(self) -> str:
        """name/version, as dkms names it."""
        return f"{self.name}/{self.version}"


# Sources a dkms.conf the way dkms does (with kernelver, kernel_source_dir and arch set),
# applies dkms's own BUILD_EXCLUSIVE tests (dkms 3.0's read_conf: bash's unanchored =~, grep
# -E over the kernel's .config) and prints what kbtf reads, NUL-separated. Only ever run
# confined (harness/sandbox.py).
EVAL = r"""
kernelver="$1" kernel_source_dir="$2" arch="$3"
. "$4" >/dev/null 2>&1
for n in PACKAGE_NAME PACKAGE_VERSION BUILD_EXCLUSIVE_KERNEL BUILD_EXCLUSIVE_ARCH \
         BUILD_EXCLUSIVE_CONFIG; do printf '%s=%s\0' "$n" "${!n}"; done
for i in "${!BUILT_MODULE_NAME[@]}"; do
    printf 'BUILT_MODULE_NAME[%s]=%s\0' "$i" "${BUILT_MODULE_NAME[$i]}"
    printf 'BUILT_MODULE_LOCATION[%s]=%s\0' "$i" "${BUILT_MODULE_LOCATION[$i]}"
done
for i in "${!MAKE[@]}"; do printf 'MAKE[%s]=%s\0' "$i" "${MAKE[$i]}"; done
[ -n "$kernelver" ] || exit 0
why=""
if [[ $BUILD_EXCLUSIVE_KERNEL && ! $kernelver =~ $BUILD_EXCLUSIVE_KERNEL ]]; then
    why="BUILD_EXCLUSIVE_KERNEL=\"$BUILD_EXCLUSIVE_KERNEL\" does not match $kernelver"
elif [[ $BUILD_EXCLUSIVE_ARCH && ! $arch =~ $BUILD_EXCLUSIVE_ARCH ]]; then
    why="BUILD_EXCLUSIVE_ARCH=\"$BUILD_EXCLUSIVE_ARCH\" does not match $arch"
elif [[ $BUILD_EXCLUSIVE_CONFIG && -e $kernel_source_dir/.config ]]; then
    for kconf in $BUILD_EXCLUSIVE_CONFIG; do
        case "$kconf" in
            !*) grep -q -E "^${kconf#!}=[ym]" "$kernel_source_dir/.config" &&
                why="BUILD_EXCLUSIVE_CONFIG=\"$BUILD_EXCLUSIVE_CONFIG\": ${kconf#!} is set" ;;
            *) grep -q -E "^${kconf}=[ym]" "$kernel_source_dir/.config" ||
                why="BUILD_EXCLUSIVE_CONFIG=\"$BUILD_EXCLUSIVE_CONFIG\": $kconf is not set" ;;
        esac
        [ -n "$why" ] && break
    done
fi
printf 'EXCLUDED_BY=%s\0' "$why"
"""


def check_syntax(path: Path) -> None:
    """bash's parse of ``path`` (``bash -n``: nothing runs). Raises ConfigError, one line."""
    check = proc.run(["bash", "-n", path], timeout=SYNTAX_TIMEOUT, check=False)
    if check.returncode != 0:
        first = (check.stderr.strip().splitlines() or ["?"])[0]
        raise ConfigError(f"--dkms {path}: bash cannot parse it: {first}")


# A line kbtf reads without bash: NAME[=N]=VALUE and an optional comment, VALUE a double-
# quoted string without backslashes, backquotes, $( or nested quotes, a single-quoted one,
# or a bare word; $NAME and ${NAME} the only expansions. Anything else is left to bash.
_VAR = r"\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)"
_DOUBLE = rf'"(?:[^"\\`$]|{_VAR})*"'
_SINGLE = r"'[^']*'"
_BARE = rf"(?:[A-Za-z0-9_./:,+=@%-]|{_VAR})*"
_LINE = re.compile(rf"(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\[(?:0|[1-9][0-9]*)\])?)="
                   rf"(?P<value>{_DOUBLE}|{_SINGLE}|(?!~){_BARE})(?:[ \t]+#.*)?")
_SIMPLE_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|"
                         r"(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")
# bash's own variables: their values are bash's, whatever the file assigns
BASH_VARIABLES = frozenset({"_", "BASHPID", "BASH_SUBSHELL", "EPOCHREALTIME", "EPOCHSECONDS",
                            "EUID", "GROUPS", "HOSTNAME", "LINENO", "PPID", "RANDOM",
                            "SECONDS", "SHLVL", "SRANDOM", "UID", "PWD", "OLDPWD"})
# What dkms sets before it sources a dkms.conf (at collection: empty, as no kernel is known).
DKMS_VARIABLES = ("kernelver", "kernel_source_dir", "arch", "dkms_tree", "source_tree",
                  "install_tree", "module", "module_version")


def read(path: Path, kernelver: str = "", kernel_source_dir: str = "", arch: str = ""
         ) -> DkmsConf | None:
    """dkms.conf ``path`` read without running it, when every line is blank, a comment or
    a plain assignment (``_LINE``) whose expansions name dkms's own variables (kernelver,
    kernel_source_dir and arch as given, the others empty) or earlier assignments; None for
    anything else (commands, conditions, substitutions, the environment, continued or CRLF
    lines: the sandboxed build sources it with bash). Raises ConfigError (one line) for one
    that names no package, version or module."""
    known = {name: "" for name in DKMS_VARIABLES}
    known |= {"kernelver": kernelver, "kernel_source_dir": kernel_source_dir, "arch": arch}
    values: dict[str, str] = {}
    try:  # bash reads bytes; kbtf only plain ASCII files
        text = path.read_bytes().decode("ascii")
    except UnicodeDecodeError:
        return None
    for raw in text.split("\n"):  # CRs kept, as bash
        line = raw.strip(" \t")
        if not line or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if m is None or line.endswith("\\") or "\r" in raw or (
                m["name"].split("[")[0] in BASH_VARIABLES):
            return None
        value = m["value"]
        quoted = value[:1] in ("'", '"')
        body = value[1:-1] if quoted else value
        if value[:1] != "'":
            names = [v["braced"] or v["bare"] for v in _SIMPLE_VAR.finditer(body)]
            if any((n not in known and n not in values) or n in BASH_VARIABLES for n in names):
                return None  # the environment's, or unset: bash knows, kbtf does not
            body = _SIMPLE_VAR.sub(lambda v: {**known, **values}[v["braced"] or v["bare"]], body)
        name = m["name"]
        values[name] = body
        if name.endswith("[0]") or "[" not in name:  # bash: X is X[0] of an array
            values[name.removesuffix("[0]")] = values[name.removesuffix("[0]") + "[0]"] = body
    return _conf(path, values)


def from_eval(path: Path, output: str) -> DkmsConf:
    """The DkmsConf of EVAL's ``output`` for ``path``. Raises ConfigError like read."""
    return _conf(path, dict(item.split("=", 1) for item in output.split("\0") if "=" in item))


def _conf(path: Path, values: dict[str, str]) -> DkmsConf:
    """A DkmsConf of a dkms.conf's variables. Raises ConfigError (one line) without a
    package, version or first module."""
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
                    {k: v for k, v in values.items() if k.startswith("BUILD_EXCLUSIVE_") and v},
                    values.get("EXCLUDED_BY", ""))
