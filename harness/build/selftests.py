"""BPF selftests (tools/testing/selftests/bpf) built against a kernel of the cache, as BPF CI
builds them (libbpf/ci build-selftests: `make headers`, then the selftests Makefile with
CLANG/LLC/LLVM_STRIP of one LLVM, VMLINUX_BTF of the kernel, a static link), into the
cache once per content: the tree, the kernel build, the compilers, the runner.

The selftests Makefile writes next to its sources (bpf_testmod/ is built with M= in place),
and nothing may be written into a kernel tree: the build runs in a scratch tree whose
tools/ is a copy and whose other top-level entries link to the real tree; the UAPI headers
go to their own O= dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import cacheentry, proc
from harness.arches import Arch, make_argv
from harness.build import buildlog
from harness.build.kbuild import KernelBuild, StepReporter
from harness.errors import BuildFailure, CommandError

# Bump when what a key builds changes in a way the key's inputs do not show.
RECIPE = 1
BUILD_TIMEOUT = 7200  # the whole selftests build (about 20-40 min on 2 cores, cold)
HEADERS_TIMEOUT = 900
COPY_TIMEOUT = 900
Progress = Callable[[str], None]


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


def ensure(kernel: KernelBuild, clang: str, runner: str, cache: Path,
           progress: Progress) -> Selftests:
    """The selftests of ``kernel``'s tree built for it with LLVM ``clang`` (clang-19: the
    BPF programs; the programs on the host side use the kernel's toolchain), making
    ``runner`` and the test kernel modules. Built once per key (temp dir + rename).

    Raises BuildFailure naming the log (the tree's selftests do not build), CommandError /
    HarnessError for the environment.
    """
    suffix = clang.removeprefix("clang")
    tools = {p: proc.output([proc.require_tool(p), "--version"], timeout=60).strip()
             for p in (clang, f"llc{suffix}", f"llvm-strip{suffix}",
                       *kernel.toolchain.programs(kernel.arch))}
    key = hashlib.sha256(json.dumps({
        "recipe": RECIPE, "source": kernel.source.identity, "kernel": kernel.key,
        "tools": tools, "runner": runner}, sort_keys=True).encode()).hexdigest()[:16]
    final = cache / "selftests" / f"{kernel.arch.name}-{kernel.source.version}-{runner}-{key}"

    def fill(tmp: Path) -> None:
        _build(kernel, clang, runner, tmp, final, progress)

    cacheentry.populate(final, (final / "selftests.json").exists, fill, "build.log")
    return Selftests(final, runner)


def cross_gap(arch: Arch) -> str | None:
    """Why kbtf cannot build the selftests for ``arch`` on this machine, or None: the
    static runner needs the target's libelf, zlib and zstd archives, which kbtf does not
    provision for a foreign arch yet."""
    if arch.is_host():
        return None
    return (f"the BPF selftests for {arch.name} are not cross-built yet: their static "
            f"runner needs {arch.debian_arch}'s libelf, zlib and zstd archives, which kbtf "
            "does not provision")


def scratch_tree(source: Path, tree: Path) -> None:
    """``tree``: tools/ copied from kernel tree ``source``, every other top-level entry a
    link to the real one (read only by the selftests build)."""
    tree.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name != "tools":
            (tree / entry.name).symlink_to(entry)
    proc.run(["cp", "-a", str(source / "tools"), str(tree / "tools")], timeout=COPY_TIMEOUT)


def _build(kernel: KernelBuild, clang: str, runner: str, tmp: Path, final: Path,
           progress: Progress) -> None:
    """The build steps into ``tmp`` (renamed to ``final`` afterwards). Raises BuildFailure."""
    log = tmp / "build.log"
    progress(f"kbtf: building BPF selftests ({runner}, bpf_testmod) of {kernel.source.label} "
             f"for {kernel.arch.name} with {clang} in {tmp} (log: {log})")
    started = time.monotonic()
    scratch_tree(kernel.source.path, tmp / "tree")
    headers = tmp / "headers"
    try:
        proc.run(make_argv(kernel.arch, source=kernel.source.path, out=headers,
                           toolchain=kernel.toolchain, targets=["headers"]),
                 logfile=log, timeout=HEADERS_TIMEOUT)
        suffix = clang.removeprefix("clang")
        selftests = tmp / "tree" / "tools" / "testing" / "selftests" / "bpf"
        extra = [f"CLANG={clang}", f"LLC=llc{suffix}", f"LLVM_STRIP=llvm-strip{suffix}",
                 # No LLVM disassembler in test_progs: BPF CI links it statically from
                 # libLLVM (llvm-N-dev, about 1 GB); its JIT-dump checks then skip.
                 f"LLVM_CONFIG=llvm-config{suffix}", "feature-llvm=0",
                 f"VMLINUX_BTF={kernel.vmlinux}",
                 f"KHDR_INCLUDES=-isystem {headers}/usr/include",
                 f"KDIR={kernel.source.path}", "EXTRA_LDFLAGS=-static",
                 f"-j{os.cpu_count() or 1}"]
        argv = make_argv(kernel.arch, source=selftests, toolchain=kernel.toolchain,
                         pahole=kernel.pahole.path, extra=extra, targets=[runner])
        # KBUILD_OUTPUT (not O=, which tools/ builds take as their own output dir): the
        # kernel build bpf_testmod's `make -C $(KDIR) M=` uses.
        rc = proc.stream(argv, logfile=log, timeout=BUILD_TIMEOUT,
                         on_line=StepReporter(progress, time.monotonic()),
                         env={"KBUILD_OUTPUT": str(kernel.dir)})
        if rc != 0:
            raise CommandError(f"make exit {rc}", log=log)
    except CommandError as exc:
        raise buildlog.classify(f"building the BPF selftests of {kernel.source.label}", exc,
                                log) from None
    built = selftests / runner
    if not built.is_file() or not (selftests / "bpf_testmod.ko").is_file():
        raise BuildFailure(f"the selftests build made no {runner} or bpf_testmod.ko", log=log)
    cacheentry.relocate_text(tmp, final)
    (tmp / "selftests.json").write_text(json.dumps({
        "runner": runner, "clang": clang, "kernel": str(kernel.dir),
        "build_seconds": round(time.monotonic() - started)}, indent=2) + "\n")
