"""Out-of-tree module builds: make -C <kernel build> M=<copy of modules/NAME>."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import buildlog, proc
from harness.arches import make_argv
from harness.errors import BuildFailure, CommandError, ConfigError
from harness.kbuild import KernelBuild
from harness.pahole import Pahole

MODULES_DIR = Path(__file__).resolve().parent.parent / "modules"
SKIPPED_BTF = "Skipping BTF generation"
# A module of a few files builds in ~2 s; past this the build (pahole, say) is hung.
MODULE_BUILD_TIMEOUT = 300


@dataclass(frozen=True)
class ModuleBuild:
    """One built module."""

    name: str
    btf_mode: str  # how its BTF was asked for: "default", "distilled", "split", ...
    ko: Path
    log: Path
    btf_skipped: bool  # Makefile.modfinal said "Skipping BTF generation"


def build_module(
    kernel: KernelBuild,
    name: str,
    outdir: Path,
    pahole: Pahole,
    btf_mode: str = "default",
    make_args: tuple[str, ...] = (),
) -> ModuleBuild:
    """Copy modules/<name> to ``outdir``/<btf_mode>/<name> and build it against ``kernel``.

    ``pahole`` is the module's pahole (make PAHOLE=...). Raises BuildFailure naming the log
    when the build fails or hangs (the kernel's rules or pahole), HarnessError when the
    environment stopped it, ConfigError if there is no such module.
    """
    src = MODULES_DIR / name
    if not src.is_dir():
        raise ConfigError(f"no module source {src}")
    dst = outdir / btf_mode / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    log = dst / "build.log"
    argv = make_argv(kernel.arch, source=kernel.dir, module=dst, pahole=pahole.path,
                     toolchain=kernel.toolchain,
                     extra=make_args, targets=["modules"])
    try:
        proc.run(argv, logfile=log, timeout=MODULE_BUILD_TIMEOUT)
    except CommandError as exc:
        raise buildlog.classify(f"module build of {name}", exc, log) from None
    ko = dst / f"{name}.ko"
    if not ko.is_file():
        raise BuildFailure(f"module build of {name} produced no {ko.name}", log=log)
    return ModuleBuild(name, btf_mode, ko, log, SKIPPED_BTF in log.read_text(errors="replace"))
