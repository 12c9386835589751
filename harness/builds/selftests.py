"""BPF selftests (tools/testing/selftests/bpf) built against a kernel of the cache, as BPF CI
builds them (libbpf/ci build-selftests: `make headers`, then the selftests Makefile with
CLANG/LLC/LLVM_STRIP of one LLVM, VMLINUX_BTF of the kernel, a static link), into the
cache once per content: the tree, the kernel build, the compilers, the runner.

The selftests Makefile writes next to its sources (bpf_testmod/ is built with M= in place),
and nothing may be written into a kernel tree: the build runs in a scratch tree whose
tools/ is a copy and whose other top-level entries link to the real tree; the UAPI headers
go to their own O= dir.

An LLVM the host has not got comes from a Debian suite's build root (clang-21 from sid for
7.x, whose BPF programs clang-19 cannot compile): on the host's arch the host's make and gcc
call it through wrapper scripts; a kernel built with a root's clang, and a foreign arch, are
built entirely inside a root. Either way the scratch tree, the kernel and its pahole are
bound at their own paths.

A tree whose selftests do not all compile is real (a distribution's tree, a patch under
test): the BPF programs that fail are set aside, quoting the compiler, with the
prog_tests/ files that embed their skeletons, and the runner is built without them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from harness import cacheentry, proc
from harness.arches import Toolchain, make_argv
from harness.builds import buildlog, buildroot
from harness.builds.buildroot import BuildRoot
from harness.builds.kbuild import KernelBuild, StepReporter
from harness.errors import BuildFailure, CommandError
from harness.plan.vmtest import tree_tests

# Bump when what a key builds changes in a way the key's inputs do not show.
RECIPE = 3
BUILD_TIMEOUT = 7200  # the whole selftests build (about 20-40 min on 2 cores, cold)
HEADERS_TIMEOUT = 900
COPY_TIMEOUT = 900
QUERY_TIMEOUT = 60
# What the selftests make runs in a cross build root, beyond the LLVM and the cross gcc: the
# host side's libraries (bpftool's bootstrap), python3 (bpf_doc.py), xxd (embedded objects),
# openssl (verify_sig_setup.sh's signing key), and pahole's libraries (the kernel's pahole
# is bound in, but its libdwarves finds libdw by the loader's path, not the binary's RUNPATH).
ROOT_PACKAGES = ("make", "gcc", "libc6-dev", "libelf-dev", "zlib1g-dev", "libzstd-dev",
                 "libcap-dev", "libssl-dev", "pkg-config", "python3", "xxd", "bc", "openssl",
                 "pahole")
# The target's libraries a cross-built runner links (libelf, zlib, zstd, libcap, libcrypto),
# installed for the target's architecture next to the host's (multiarch).
CROSS_LIBRARIES = ("libc6-dev", "libelf-dev", "zlib1g-dev", "libzstd-dev", "libcap-dev",
                   "libssl-dev")
# Beside an LLVM called from the host's build: headers of what clang compiles beyond BPF
# programs (urandom_read's library includes libbpf's headers, which include libelf.h).
LLVM_ROOT_LIBRARIES = ("libelf-dev", "zlib1g-dev", "libzstd-dev")
HOST_SUITE = "bookworm"  # a cross root's suite when the LLVM is the host's own
# The LLVM programs the selftests make calls (wrapped when they come from a root).
LLVM_PROGRAMS = ("clang", "llc", "llvm-strip", "llvm-config", "llvm-objcopy")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class SetAside:
    """A BPF program of the tree that did not compile, left out of the runner."""

    program: str  # progs/<name>.c, or prog_tests/<name>.c (a test that did not compile)
    error: str  # the compiler's first error for it
    files: tuple[str, ...]  # the prog_tests/ files left out with it (embedding its skeleton)
    tests: tuple[str, ...]  # the runner's tests those files held


@dataclass(frozen=True)
class Selftests:
    """A finished selftests build in the cache."""

    dir: Path  # the entry
    runner: str  # the program: test_progs, test_progs-no_alu32, ...

    @property
    def bpf_dir(self) -> Path:
        """tools/testing/selftests/bpf of the scratch tree: the runner, its BPF objects,
        bpf_testmod.ko and the helper programs, where the runner expects them."""
        return self.dir / "tree" / "tools" / "testing" / "selftests" / "bpf"

    @property
    def log(self) -> Path:
        return self.dir / "build.log"

    def set_aside(self) -> list[SetAside]:
        """The tree's BPF programs that did not compile and were left out."""
        facts = json.loads((self.dir / "selftests.json").read_text())
        return [SetAside(a["program"], a["error"], tuple(a["files"]), tuple(a["tests"]))
                for a in facts.get("set_aside", [])]

    def left_out(self, test: str) -> SetAside | None:
        """The set-aside program whose prog_tests/ file held ``test``, if any."""
        return next((a for a in self.set_aside() if test.split("/")[0] in a.tests), None)


@dataclass(frozen=True)
class _Where:
    """Where the selftests make runs: on the host (its LLVM, or the LLVM programs of
    ``llvm_root`` called through wrapper scripts), or all of it inside ``root``, with
    ``binds`` seen at their host paths."""

    root: BuildRoot | None = None
    llvm_root: BuildRoot | None = None
    binds: tuple[Path, ...] = ()
    guest_suite: str = ""  # the Debian suite of the guest root the runner runs in

    @property
    def link(self) -> str:
        """How the runner is linked: against the guest's own libraries ("dynamic") when it
        is built in a root of the guest root's suite (same libraries, same sonames), else
        "static" (the host's bookworm libraries are not the guest's)."""
        return ("dynamic" if self.root is not None and self.root.suite == self.guest_suite
                else "static")

    def argv(self, argv: Sequence[str | Path]) -> list[str]:
        if self.root is None:
            return [str(a) for a in argv]
        return self.root.command(argv, self.binds)

    def wrappers(self, bin_dir: Path, programs: Sequence[str]) -> dict[str, str]:
        """With an ``llvm_root``: scripts in ``bin_dir`` running its ``programs``, and the
        environment putting them first on PATH; else nothing."""
        if self.llvm_root is None:
            return {}
        self.llvm_root.install_wrappers(bin_dir, programs, self.binds)
        return {"PATH": f"{bin_dir}{os.pathsep}{proc.tool_path()}"}

    def version(self, program: str) -> str:
        """``program --version``'s output there. Raises ToolMissing / CommandError."""
        if self.root is not None:
            return proc.output(self.argv([program, "--version"]), timeout=QUERY_TIMEOUT).strip()
        if self.llvm_root is not None and program.startswith(("clang", "llc", "llvm")):
            return proc.output(self.llvm_root.command([program, "--version"], self.binds),
                               timeout=QUERY_TIMEOUT).strip()
        return proc.output([proc.require_tool(program), "--version"],
                           timeout=QUERY_TIMEOUT).strip()


def ensure(kernel: KernelBuild, llvm: Toolchain, runner: str, cache: Path,
           progress: Progress, guest_suite: str) -> Selftests:
    """The selftests of ``kernel``'s tree built for it with ``llvm`` (the BPF programs;
    the host side and the test modules with the kernel's toolchain, or a cross root's gcc:
    see _where), making ``runner`` and the test kernel modules, its runner linked to run in
    a guest root of ``guest_suite``. Built once per key (temp dir + rename).

    Raises BuildFailure naming the log (the tree's selftests do not build), CommandError /
    HarnessError for the environment.
    """
    where = replace(_where(kernel, llvm, cache), guest_suite=guest_suite)
    chain, arch = kernel.toolchain, kernel.arch
    # All in a root: the host side is the root's gcc (and the kernel's clang, its modules).
    host_side = chain.programs(arch) if where.root is None else (
        arch.tool("gcc"), *(chain.programs(arch)[:1] if chain.family == "llvm" else ()))
    programs = (llvm.clang, llvm.tool("llc"), llvm.tool("llvm-strip"), *host_side)
    tools = {p: where.version(p) for p in programs}
    key = hashlib.sha256(json.dumps({
        "recipe": RECIPE, "source": kernel.source.identity, "kernel": kernel.key,
        "tools": tools, "runner": runner, "link": where.link,
        "root": root.tree.parent.name if (root := where.root or where.llvm_root) else None},
        sort_keys=True).encode()).hexdigest()[:16]
    final = cache / "selftests" / f"{kernel.arch.name}-{kernel.source.version}-{runner}-{key}"

    def fill(tmp: Path) -> None:
        _build(kernel, llvm, runner, replace(where, binds=(*where.binds, tmp)), tmp, final,
               progress)

    cacheentry.populate(final, (final / "selftests.json").exists, fill, "build.log")
    return Selftests(final, runner)


def _where(kernel: KernelBuild, llvm: Toolchain, cache: Path) -> _Where:
    """Where the selftests of ``kernel`` are built with ``llvm``:

    - the host's LLVM, the host's arch: on the host;
    - an LLVM of a suite's build root, the host's arch: on the host, with that root's LLVM
      programs through wrappers, so the runner's and the test modules' gcc is the one that
      built the kernel (a newer suite's gcc adds warnings older trees' -Werror fail on);
    - a kernel built with a build root's clang: all inside a root of that suite (that
      clang links the runner and its libbpf against the root's glibc, and the build runs
      bpftool and resolve_btfids linked with them; the kernel's host programs, built
      against the host's older glibc, run there too);
    - a foreign arch: inside a root (``llvm.suite``'s, else the host's suite) holding the
      LLVM, the kernel's own LLVM (its modules' build), the cross compiler and the
      target's libraries (multiarch; the host has no foreign libraries).
    Roots are made once."""
    arch = kernel.arch
    pahole_prefix = kernel.pahole.path.resolve().parents[2]  # <prefix>/usr/bin/pahole
    binds = (kernel.dir, kernel.source.path.resolve(), pahole_prefix)
    chain = kernel.toolchain
    if arch.is_host() and not chain.suite:
        if not llvm.suite:
            return _Where()
        wanted = (*buildroot.llvm_packages(llvm.version), *LLVM_ROOT_LIBRARIES)
        return _Where(llvm_root=buildroot.ensure(cache, llvm.suite, wanted), binds=binds)
    packages = [*ROOT_PACKAGES, *buildroot.llvm_packages(llvm.version)]
    if chain.family == "llvm":
        packages += buildroot.llvm_packages(chain.version)
    if arch.is_host():
        return _Where(buildroot.ensure(cache, chain.suite, packages), binds=binds)
    triplet = arch.cross_compile.rstrip("-")
    packages += [f"gcc-{triplet}", f"binutils-{triplet}", f"libc6-dev-{arch.debian_arch}-cross",
                 *(f"{p}:{arch.debian_arch}" for p in CROSS_LIBRARIES)]
    root = buildroot.ensure(cache, llvm.suite or HOST_SUITE, packages, (arch.debian_arch,))
    return _Where(root, binds=binds)


def scratch_tree(source: Path, tree: Path) -> None:
    """``tree``: tools/ copied from kernel tree ``source``, every other top-level entry a
    link to the real one (read only by the selftests build)."""
    tree.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name != "tools":
            (tree / entry.name).symlink_to(entry)
    proc.run(["cp", "-a", str(source / "tools"), str(tree / "tools")], timeout=COPY_TIMEOUT)


def _build(kernel: KernelBuild, llvm: Toolchain, runner: str, where: _Where, tmp: Path,
           final: Path, progress: Progress) -> None:
    """The build steps into ``tmp`` (renamed to ``final`` afterwards). Raises BuildFailure."""
    log = tmp / "build.log"
    progress(f"kbtf: building BPF selftests ({runner}, bpf_testmod) of {kernel.source.label} "
             f"for {kernel.arch.name} with {llvm.label} in {tmp} (log: {log})")
    started = time.monotonic()
    scratch_tree(kernel.source.path, tmp / "tree")
    headers = tmp / "headers"
    selftests = tmp / "tree" / "tools" / "testing" / "selftests" / "bpf"
    set_aside: list[SetAside] = []
    try:
        proc.run(make_argv(kernel.arch, source=kernel.source.path, out=headers,
                           toolchain=kernel.toolchain, targets=["headers"]),
                 logfile=log, timeout=HEADERS_TIMEOUT)
        argv = where.argv(_make(kernel, llvm, runner, selftests, headers, where.link))
        env = where.wrappers(tmp / "llvm-bin", [llvm.tool(p) for p in LLVM_PROGRAMS])
        if _stream(argv, kernel, log, progress, env, keep_going=True) != 0:
            set_aside = _set_aside(selftests, log.read_text(errors="replace"), tmp)
            if not set_aside:
                raise CommandError("make failed", log=log)
            progress(f"kbtf: {len(set_aside)} BPF programs of the tree did not compile, set "
                     "aside: " + ", ".join(a.program for a in set_aside))
            if (rc := _stream(argv, kernel, log, progress, env, keep_going=False)) != 0:
                raise CommandError(f"make exit {rc} (after setting aside "
                                   f"{', '.join(a.program for a in set_aside)})", log=log)
    except CommandError as exc:
        raise buildlog.classify(f"building the BPF selftests of {kernel.source.label}", exc,
                                log) from None
    if not (selftests / runner).is_file() or not (selftests / "bpf_testmod.ko").is_file():
        raise BuildFailure(f"the selftests build made no {runner} or bpf_testmod.ko", log=log)
    cacheentry.relocate_text(tmp, final)
    (tmp / "selftests.json").write_text(json.dumps({
        "runner": runner, "clang": llvm.label, "kernel": str(kernel.dir), "link": where.link,
        "set_aside": [asdict(a) for a in set_aside],
        "build_seconds": round(time.monotonic() - started)}, indent=2) + "\n")


def _make(kernel: KernelBuild, llvm: Toolchain, runner: str, selftests: Path, headers: Path,
          link: str) -> list[str]:
    """The selftests make command line (BPF CI's variables) for ``runner``, linked
    ``link`` ("static" or "dynamic")."""
    extra = [f"CLANG={llvm.clang}", f"LLC={llvm.tool('llc')}",
             f"LLVM_STRIP={llvm.tool('llvm-strip')}",
             # No LLVM disassembler in test_progs: BPF CI links it statically from libLLVM
             # (llvm-N-dev, about 1 GB); its JIT-dump checks then skip.
             f"LLVM_CONFIG={llvm.tool('llvm-config')}", "feature-llvm=0",
             f"VMLINUX_BTF={kernel.vmlinux}",
             f"KHDR_INCLUDES=-isystem {headers}/usr/include",
             f"KDIR={kernel.source.path}",
             *(["EXTRA_LDFLAGS=-static"] if link == "static" else []),
             f"-j{os.cpu_count() or 1}"]
    # bpf_testmod.ko by name: test_progs depends on it, but test_verifier (which loads it
    # for its kfunc tests) and test_maps do not; every tree's Makefile has the target.
    return make_argv(kernel.arch, source=selftests, toolchain=kernel.toolchain,
                     pahole=kernel.pahole.path, extra=extra, targets=[runner, "bpf_testmod.ko"])


def _stream(argv: list[str], kernel: KernelBuild, log: Path, progress: Progress,
            env: dict[str, str], keep_going: bool) -> int:
    """Run the selftests make (-k: on past programs that fail); its exit code."""
    if keep_going:
        argv = [*argv, "-k"]
    # KBUILD_OUTPUT (not O=, which tools/ builds take as their own output dir): the
    # kernel build bpf_testmod's `make -C $(KDIR) M=` uses.
    return proc.stream(argv, logfile=log, timeout=BUILD_TIMEOUT,
                       on_line=StepReporter(progress, time.monotonic()),
                       env={**env, "KBUILD_OUTPUT": str(kernel.dir)})


# make's line for a target that failed: `make: *** [Makefile:NNN: <dir>/<name>.bpf.o] Error 1`
# (a BPF program, progs/<name>.c) or `<dir>/<name>.test.o` (a test, prog_tests/<name>.c)
_FAILED = re.compile(r"\*\*\* \[[^\]]*?(?P<name>[\w-]+)\.(?P<kind>bpf|test)\.o\] Error \d+")
_SOURCE_DIR = {"bpf": "progs", "test": "prog_tests"}


def failed_sources(log_text: str) -> list[tuple[str, str]]:
    """(progs/<name>.c or prog_tests/<name>.c, its compiler's first error line) of each
    object make reports failed in ``log_text``, in order. The error is the first `error:`
    line whose own file or include chain ("In file included from") is that source."""
    sources = list(dict.fromkeys(f"{_SOURCE_DIR[m['kind']]}/{m['name']}.c"
                                 for m in _FAILED.finditer(log_text)))
    errors: dict[str, str] = {}
    chain: list[str] = []
    for line in log_text.splitlines():
        if line.startswith(("In file included from", "                 from")):
            chain.append(line)
            continue
        if "error:" in line:
            for source in sources:
                if source not in errors and any(f"/{source}:" in x or x.startswith(
                        f"{source}:") or f" {source}:" in x for x in (*chain, line)):
                    errors[source] = re.sub(r"^/\S*/(?=progs/|prog_tests/|[\w.-]+\.h:)", "",
                                            line.strip())
        chain = []
    return [(src, errors.get(src, "(no compiler error line found in the log)"))
            for src in sources]


def _set_aside(selftests: Path, log_text: str, tmp: Path) -> list[SetAside]:
    """Move the sources make could not compile out of the scratch tree into
    ``tmp``/set-aside: a BPF program with the prog_tests/ files that embed its skeleton, a
    test file alone. What was moved."""
    moved = []
    aside = tmp / "set-aside"
    for source, error in failed_sources(log_text):
        path = selftests / source
        if not path.is_file():
            continue
        if source.startswith("progs/"):
            # prog_tests/ files embedding its skeleton, those set aside already included
            skels = tuple(f'"{path.stem}.{kind}.h"' for kind in ("skel", "lskel", "subskel"))
            users = [f for d in (selftests, aside) for f in sorted(d.glob("prog_tests/*.c"))
                     if any(s in f.read_text(errors="replace") for s in skels)]
        else:
            users = [path]
        tests = tree_tests(selftests, users)
        for f in dict.fromkeys([path, *users]):
            if f.is_relative_to(selftests):
                dest = aside / f.relative_to(selftests)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(f, dest)
        names = sorted({f"prog_tests/{f.name}" for f in users})
        moved.append(SetAside(source, error, tuple(names), tuple(tests)))
    if moved:
        # The runner's test list, generated from prog_tests/*.c, is newer than every file
        # left: remade only if removed (else the runner lists tests that are not in it).
        (selftests / "prog_tests" / "tests.h").unlink(missing_ok=True)
    return moved
