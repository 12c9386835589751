"""Building a module against the headers a kernel carries in /sys/kernel/kheaders.tar.xz.

The archive is copied out of the running guest, extracted on the host and the module
(cross-)built there, then loaded into that guest: a foreign guest has no compiler, and on
x86_64 it is seconds instead of the 46-54 s an in-guest build took under TCG.

The seed selftest (run_kheaders_modbuild.sh) extracts the archive and runs
``make -C <headers> M=<module> modules``. That worked with the v2 patch, whose archive also
held the Makefile, scripts/, arch/$ARCH/Makefile and Module.symvers. The merged kheaders
(kernel/gen_kheaders.sh) ships only include/ and arch/$SRCARCH/include/, so the build
machinery has to come from elsewhere: the *scaffold* below holds exactly those non-header
pieces, taken from the kernel's build tree, plus a vmlinux stripped to .BTF and .BTF_ids (what
Debian's and Ubuntu's headers packages ship so out-of-tree modules get BTF). Every header
the module is compiled with comes from the running kernel's archive.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
from pathlib import Path

from harness import cacheentry, proc
from harness.arches import make_argv
from harness.btf.elfbtf import section_data
from harness.builds.kbuild import KernelBuild
from harness.plan.pahole import Pahole

ARCHIVE = "/sys/kernel/kheaders.tar.xz"
BUILT_ARCHIVE = "kernel/kheaders_data.tar.xz"  # the same archive in the kernel's build tree
SCAFFOLD_VERSION = "2"
EXTRACT_TIMEOUT = 300  # tar -xJf of a ~4 MB archive: seconds
BUILD_TIMEOUT = 300  # one small module against the headers: seconds


def scaffold(kernel: KernelBuild, cache_dir: Path) -> Path:
    """Return the kbuild scaffold for ``kernel`` (built once into ``cache_dir``/scaffolds),
    named after the build's vmlinux BTF as well as its dir: a kernel entry rebuilt under
    the same key (a newer seed recipe) gets its own scaffold.

    Raises CommandError if objcopy fails.
    """
    btf = hashlib.sha256(section_data(kernel.vmlinux, ".BTF") or b"").hexdigest()[:12]
    final = cache_dir / "scaffolds" / f"{kernel.dir.name}-{btf}-v{SCAFFOLD_VERSION}"
    cacheentry.populate(final, final.is_dir, lambda tmp: _fill(kernel, tmp))
    return final


def _fill(kernel: KernelBuild, out: Path) -> None:
    """Copy the non-header kbuild pieces of ``kernel`` into ``out``."""
    src, obj, srcarch = kernel.source.path, kernel.dir, kernel.arch.kernel_arch
    shutil.copy(src / "Makefile", out / "Makefile")
    # scripts/: the tree's Makefiles and scripts, then the host programs the build compiled.
    shutil.copytree(src / "scripts", out / "scripts", symlinks=True)
    shutil.copytree(obj / "scripts", out / "scripts", symlinks=True, dirs_exist_ok=True)
    (out / "arch" / srcarch).mkdir(parents=True)
    for makefile in (src / "arch" / srcarch).glob("Makefile*"):
        shutil.copy(makefile, out / "arch" / srcarch / makefile.name)
    shutil.copy(obj / ".config", out / ".config")
    shutil.copy(obj / "Module.symvers", out / "Module.symvers")
    # The generated config files the tree's Makefile checks before an M= build (its
    # checked-configs; 7.x adds include/generated/rustc_cfg); headers come from the archive.
    for name in checked_configs((src / "Makefile").read_text()):
        if not name.endswith(".h") and (obj / name).is_file():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(obj / name, out / name)
    for tool in ("tools/objtool/objtool", "tools/bpf/resolve_btfids/resolve_btfids"):
        if (obj / tool).is_file():
            (out / tool).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(obj / tool, out / tool)
    proc.run([kernel.arch.tool("objcopy"), "--only-section=.BTF", "--only-section=.BTF_ids",
              obj / "vmlinux", out / "vmlinux"], logfile=out / "kbtf-scaffold.log", timeout=120)


def checked_configs(makefile: str) -> list[str]:
    """The generated config files a top-level kernel Makefile requires before building
    (``checked-configs``), or auto.conf alone for a Makefile that names none."""
    m = re.search(r"^checked-configs\s*:=\s*\$\(addprefix \$\(objtree\)/,\s*([^)]*)\)",
                  makefile, re.MULTILINE)
    return m[1].split() if m else ["include/config/auto.conf"]


def copy_out_command(dest: str) -> str:
    """Guest shell command: copy the running kernel's archive to ``dest`` (a guest path in
    its writable output share), so the host can extract and build against it."""
    return f"cp {ARCHIVE} {shlex.quote(dest)}"


def extract(archive: Path, headers: Path) -> None:
    """Extract ``archive`` into a new ``headers`` dir on the host. Raises CommandError."""
    shutil.rmtree(headers, ignore_errors=True)
    headers.mkdir(parents=True)
    proc.run(["tar", "-xJf", archive, "-C", headers], timeout=EXTRACT_TIMEOUT)


def build(scaffold_dir: Path, headers: Path, module_src: Path, module: Path,
          kernel: KernelBuild, pahole: Pahole, log: Path) -> None:
    """Lay the scaffold over the extracted ``headers`` (symlinks: it holds no header, so it
    replaces nothing extracted), copy ``module_src`` to ``module`` and build it the way the
    selftest does: make -C <headers> M=<module> modules, cross-compiling for a foreign arch.

    Raises CommandError (CommandTimeout) naming ``log``.
    """
    proc.run(["cp", "-as", f"{scaffold_dir}/.", f"{headers}/"], timeout=120)
    shutil.rmtree(module, ignore_errors=True)
    shutil.copytree(module_src, module)
    proc.run(make_argv(kernel.arch, source=headers, module=module, pahole=pahole.path,
                       toolchain=kernel.toolchain, targets=["modules"]), logfile=log,
             timeout=BUILD_TIMEOUT)


def stray_headers(scaffold_dir: Path, srcarch: str) -> list[str]:
    """Paths in a scaffold that would shadow the archive's headers (there should be none:
    its include/ holds only generated config files -- config/auto.conf, 7.x's
    generated/rustc_cfg -- and no .h, and it has no arch/<srcarch>/include)."""
    stray = [str(p.relative_to(scaffold_dir)) for p in (scaffold_dir / "include").rglob("*")
             if p.is_file() and p.suffix == ".h"]
    if (scaffold_dir / "arch" / srcarch / "include").exists():
        stray.append(f"arch/{srcarch}/include")
    return stray
