"""Out-of-tree module builds: make -C <kernel build> M=<copy of modules/NAME>."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import proc
from harness.errors import BuildError
from harness.kbuild import KernelBuild
from harness.pahole import Pahole

MODULES_DIR = Path(__file__).resolve().parent.parent / "modules"
SKIPPED_BTF = "Skipping BTF generation"


@dataclass(frozen=True)
class ModuleBuild:
    """One built module."""

    name: str
    variant: str  # "default" or the BTF mode it was built for
    ko: Path
    log: Path
    btf_skipped: bool  # Makefile.modfinal said "Skipping BTF generation"


def build_module(
    kernel: KernelBuild,
    name: str,
    outdir: Path,
    pahole: Pahole,
    variant: str = "default",
    make_args: tuple[str, ...] = (),
) -> ModuleBuild:
    """Copy modules/<name> to ``outdir``/<variant>/<name> and build it against ``kernel``.

    ``pahole`` is the module's pahole (make PAHOLE=...). Raises BuildError naming the log.
    """
    src = MODULES_DIR / name
    if not src.is_dir():
        raise BuildError(f"no module source {src}")
    dst = outdir / variant / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    log = dst / "build.log"
    argv = ["make", "-C", str(kernel.dir), f"M={dst}", *kernel.arch.make_vars(),
            f"PAHOLE={pahole.path}", *make_args, "modules"]
    try:
        proc.run(argv, logfile=log)
    except BuildError:
        # Say why when pahole itself refused (e.g. pahole < 1.26 given --btf_features).
        why = [ln for ln in log.read_text(errors="replace").splitlines() if "pahole" in ln
               and ("unrecognized" in ln or "error" in ln.lower()) and not ln.startswith("$")]
        if why:
            raise BuildError(f"module build failed: {why[-1].strip()}", log=log) from None
        raise
    ko = dst / f"{name}.ko"
    if not ko.is_file():
        raise BuildError(f"module build produced no {ko.name}", log=log)
    return ModuleBuild(name, variant, ko, log, SKIPPED_BTF in log.read_text(errors="replace"))
