"""--toolchain SPECs: gcc, or LLVM (Debian's versioned clang) checked against the tree's own
minimum; and the identity of a toolchain's programs, which the kernel cache key holds."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from harness import proc
from harness.arches import GCC, Arch, Toolchain
from harness.errors import ConfigError

QUERY_TIMEOUT = 60  # <tool> --version, min-tool-version.sh
# Debian versioned clang the default search looks for, newest first (bookworm: 14, 16, 19).
CLANG_VERSIONS = range(30, 13, -1)


def clang_version(program: str) -> str:
    """"19.1.7" from ``<program> --version``. Raises ToolMissing naming the package,
    ConfigError if the output names no clang version."""
    out = proc.output([proc.require_tool(program), "--version"], timeout=QUERY_TIMEOUT)
    m = re.search(r"clang version (\d+\.\d+\.\d+)", out)
    if m is None:
        raise ConfigError(f"{program} --version names no clang version: {out[:80]!r}")
    return m[1]


def tree_minimum(tree: Path, arch: Arch, tool: str) -> str:
    """The minimum version of ``tool`` the tree accepts (scripts/min-tool-version.sh).

    Raises ConfigError if the tree has no such script or it does not know the tool.
    """
    script = tree / "scripts" / "min-tool-version.sh"
    if not script.is_file():
        raise ConfigError(f"{tree} has no scripts/min-tool-version.sh: kbtf cannot tell which "
                          f"{tool} it accepts")
    res = proc.run(["sh", script, tool], timeout=QUERY_TIMEOUT, check=False,
                   env={"ARCH": arch.kernel_arch, "SRCARCH": arch.kernel_arch})
    if res.returncode != 0 or not res.stdout.strip():
        raise ConfigError(f"{script} {tool} failed: {res.stderr.strip()[:200]}")
    return res.stdout.strip()


def _tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


# Dirs of a build root's wrapper scripts this process put on PATH (os.pathsep-separated),
# inherited by its workers: their clang-N is a root's, not the host's.
WRAPPERS_ENV = "KBTF_WRAPPER_DIRS"


def installed_clangs() -> list[int]:
    """Major versions of Debian's clang-N the host has on PATH (not a build root's
    wrappers), newest first."""
    wrapped = set(filter(None, os.environ.get(WRAPPERS_ENV, "").split(os.pathsep)))
    path = os.pathsep.join(d for d in proc.tool_path().split(os.pathsep) if d not in wrapped)
    return [v for v in CLANG_VERSIONS if shutil.which(f"clang-{v}", path=path)]


def resolve(spec: str, arch: Arch) -> Toolchain:
    """The toolchain a --toolchain SPEC names: 'gcc', 'llvm' (the newest installed clang-N)
    or 'llvm-N'. Whether the tree accepts that clang is checked once the tree is at hand
    (``check_minimum``, in the fetch stage).

    Raises ConfigError (unknown spec, no clang-N installed), ToolMissing (clang-N, its lld
    or llvm tools absent).
    """
    if spec == "gcc":
        return GCC
    m = re.fullmatch(r"llvm(?:-(\d+))?", spec)
    if m is None:
        raise ConfigError(f"unknown toolchain '{spec}': use gcc, llvm or llvm-N (e.g. llvm-19)")
    candidates = [int(m[1])] if m[1] else installed_clangs()
    if not candidates:
        raise ConfigError("no clang-N installed for --toolchain llvm: apt-get install "
                          "clang-19 lld-19 llvm-19, or run ./kbtf once")
    chain = Toolchain.llvm(candidates[0])
    for program in chain.programs(arch):
        proc.require_tool(program)
    return chain


def check_minimum(chain: Toolchain, tree: Path, arch: Arch) -> None:
    """Whether ``tree`` accepts ``chain``'s clang (its scripts/min-tool-version.sh llvm);
    gcc is not checked (every Debian gcc is far past any tree's minimum).

    Raises ConfigError naming the minimum and the package to install.
    """
    if chain == GCC:
        return
    minimum = tree_minimum(tree, arch, "llvm")
    clang = chain.clang
    version = clang_version(clang)
    if _tuple(version) < _tuple(minimum):
        raise ConfigError(f"{clang} ({version}) is older than {minimum}, the minimum of "
                          f"{tree}/scripts/min-tool-version.sh: install a newer one (apt-get "
                          "install clang-19 lld-19 llvm-19) and use llvm-19")


def identity(chain: Toolchain, arch: Arch) -> Mapping[str, str]:
    """What the build's programs are: each program's full ``--version`` output (compiler,
    linker, assembler or LLVM tools) and rustc's, which Kconfig records as
    CONFIG_RUSTC_VERSION when it is on PATH. Raises ToolMissing naming the package."""
    ident = {}
    for program in chain.programs(arch):
        ident[program] = proc.output([proc.require_tool(program), "--version"],
                                     timeout=QUERY_TIMEOUT).strip()
    rustc = shutil.which("rustc", path=proc.tool_path())
    ident["rustc"] = (proc.output([rustc, "--version"], timeout=QUERY_TIMEOUT).strip()
                      if rustc else "(none)")
    return ident
