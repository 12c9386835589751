"""Out-of-tree module builds: make -C <kernel build> M=<copy of modules/NAME>."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from harness import REPO, proc
from harness.arches import Arch, Toolchain, make_argv
from harness.builds import buildlog, cacheremote
from harness.builds.buildroot import BuildRoot
from harness.errors import BuildFailure, CommandError, ConfigError
from harness.plan.pahole import Pahole
from harness.plan.usermod import check_links

MODULES_DIR = REPO / "modules"
SKIPPED_BTF = "Skipping BTF generation"
# A module of a few files builds in ~2 s; past this the build (pahole, say) is hung.
MODULE_BUILD_TIMEOUT = 300


class BuildTarget(Protocol):
    """What a module builds against: a kernel build dir (KernelBuild) or a distro's
    headers (distro.DistroKernel)."""

    @property
    def dir(self) -> Path: ...  # make -C here

    @property
    def arch(self) -> Arch: ...

    @property
    def toolchain(self) -> Toolchain: ...

    @property
    def vmlinux(self) -> Path: ...  # its BTF is the base of a module's split BTF (may be absent)


@dataclass(frozen=True)
class ModuleBuild:
    """One out-of-tree module directory, built."""

    name: str  # the source directory's name
    btf_mode: str  # how its BTF was asked for: "default", "distilled", "split", ...
    kos: tuple[Path, ...]  # every .ko the build made, in modules.order
    log: Path
    btf_skipped: bool  # Makefile.modfinal said "Skipping BTF generation"
    # each .ko's ELF and BTF facts (run/pointrun.module_record), in the order of kos
    facts: tuple[dict[str, object], ...] = ()

    def facts_of(self, ko: Path) -> dict[str, object]:
        """The facts of ``ko`` (one of kos) read when it was built ({} if none were)."""
        return dict(zip(self.kos, self.facts, strict=False)).get(ko, {})

    @property
    def ko(self) -> Path:
        """The .ko named after the directory (kbtf's own modules), else the only one.

        Raises BuildFailure when there is no such single module.
        """
        named = [k for k in self.kos if k.stem == self.name]
        if named or len(self.kos) == 1:
            return (named or list(self.kos))[0]
        raise BuildFailure(f"{self.name} built {len(self.kos)} modules and none is called "
                           f"{self.name}.ko", log=self.log)


# Build products a user's directory may hold from an earlier build: not copied.
_STALE = shutil.ignore_patterns(".git", "*.o", "*.ko", "*.mod", "*.mod.c", ".*.cmd",
                                "modules.order", "Module.symvers", ".tmp_versions")


def build_module(
    kernel: BuildTarget,
    src: Path,
    outdir: Path,
    pahole: Pahole | None,
    btf_mode: str = "default",
    make_args: tuple[str, ...] = (),
    build_root: BuildRoot | None = None,
) -> ModuleBuild:
    """Copy module directory ``src`` (kbtf's modules/<name> or the user's, never written
    to) to ``outdir``/<btf_mode>/<name> and build it against ``kernel``.

    ``pahole`` is the module's pahole (make PAHOLE=...; None: the `pahole` on PATH, as a
    distro's users build). With ``build_root``, make runs inside it. Raises BuildFailure
    naming the log
    when the build fails or hangs (the kernel's rules or pahole) or makes no module,
    HarnessError when the environment stopped it, ConfigError if ``src`` is no directory.
    """
    if not src.is_dir():
        raise ConfigError(f"no module source directory {src}")
    dst = outdir / btf_mode / src.name
    copy_module(src, dst)
    log = dst / "build.log"
    argv = make_argv(kernel.arch, source=kernel.dir, module=dst,
                     pahole=pahole.path if pahole else None,
                     toolchain=kernel.toolchain, extra=make_args, targets=["modules"])
    if build_root is not None:
        argv = build_root.command(argv, binds=(dst,))
    try:
        proc.run(argv, logfile=log, timeout=MODULE_BUILD_TIMEOUT)
    except CommandError as exc:
        raise buildlog.classify(f"module build of {src.name}", exc, log) from None
    kos = built_modules(dst)
    if not kos:
        raise BuildFailure(f"module build of {src.name} produced no .ko", log=log)
    return ModuleBuild(src.name, btf_mode, kos, log,
                       SKIPPED_BTF in log.read_text(errors="replace"))


MODULE_CACHE_VERSION = 2  # bump when what a kept build holds changes (2: its built-in record)


def source_digest(src: Path) -> str:
    """Content address of module directory ``src``: every file's path, exec bit and bytes
    (earlier build products left out, as copy_module leaves them)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(src, followlinks=True):
        ignored = _STALE(root, [*dirs, *files])
        dirs[:] = sorted(d for d in dirs if d not in ignored)
        for name in sorted(f for f in files if f not in ignored):
            path = Path(root) / name
            digest.update(f"{path.relative_to(src)}\0{os.access(path, os.X_OK)}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_build_module(kernel: BuildTarget, src: Path, outdir: Path, pahole: Pahole,
                        btf_mode: str, make_args: tuple[str, ...], cache_dir: Path
                        ) -> ModuleBuild:
    """build_module, its build dir kept in ``cache_dir``/modules by content: the kernel
    entry (its name holds its content key), the module's files, pahole's content, the BTF
    mode and make arguments. The same inputs again copy the kept build (its log says so)
    instead of running make: what is tested is the same bytes. Only a successful build is
    kept. Raises what build_module raises."""
    key = content_key({"kernel": kernel.dir.name, "source": source_digest(src),
                       "pahole": pahole.digest, "btf_mode": btf_mode,
                       "make_args": list(make_args)})
    final = cache_dir / "modules" / f"{src.name}-{btf_mode}-{key}"
    dst = outdir / btf_mode / src.name
    built_in = cacheremote.kept_or_made(final, dst, lambda: build_module(
        kernel, src, outdir, pahole, btf_mode, make_args))
    log = dst / "build.log"
    text = log.read_text(errors="replace")
    if built_in is not None:
        with log.open("a") as f:
            f.write(f"kbtf: this build was kept in {final} and reused (same kernel, module "
                    "files, pahole, BTF mode and make arguments)\n")
    return ModuleBuild(src.name, btf_mode, built_modules(dst, built_in), log,
                       SKIPPED_BTF in text)


def content_key(inputs: dict[str, object]) -> str:
    """The cache key of a kept build made from ``inputs`` (MODULE_CACHE_VERSION with it)."""
    blob = json.dumps({**inputs, "version": MODULE_CACHE_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# A pass-through pahole that keeps a copy of the BTF pahole wrote detached: 7.x's
# scripts/gen-btf.sh has pahole write <ko>.BTF.1, lets resolve_btfids post-process it into
# the final .BTF and deletes it. The copy, <ko>.BTF.1.pahole, is pahole's own output.
PAHOLE_RECORDER = """#!/bin/sh
"{real}" "$@"
rc=$?
for a in "$@"; do
  case "$a" in --btf_encode_detached=*) f="${{a#--btf_encode_detached=}}"
    [ -f "$f" ] && cp "$f" "$f.pahole" ;; esac
done
exit $rc
"""


def pahole_recorder(real: Path, where: Path) -> Path:
    """PAHOLE_RECORDER for pahole binary ``real``, written into dir ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    script = where / "pahole-recorder"
    script.write_text(PAHOLE_RECORDER.format(real=real))
    script.chmod(0o755)
    return script


def pahole_own_btf(ko: Path) -> Path | None:
    """What pahole itself wrote for ``ko`` in a build with pahole_recorder, if the tree
    post-processes pahole's output (7.x); None when pahole's output is the final .BTF."""
    copy = ko.with_name(f"{ko.name}.BTF.1.pahole")
    return copy if copy.is_file() else None


def copy_module(src: Path, dst: Path) -> None:
    """Copy module dir ``src`` to ``dst`` (replacing it), without earlier build products;
    links, all inside ``src`` (usermod.check_links), become what they point to: the copy holds no
    path back into the user's tree for the build to write through. Raises ConfigError."""
    check_links(src)
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=_STALE, symlinks=False)


def built_modules(build_dir: Path, built_in: Path | None = None) -> tuple[Path, ...]:
    """The .ko files of an M= build dir, in the order of its modules.order. kbuild names
    them there by absolute path for an external module: a build made in ``built_in`` and
    copied to ``build_dir`` (a kept build) has its names moved over."""
    order = build_dir / "modules.order"
    names = [Path(n) for n in order.read_text().split()] if order.is_file() else []
    base = built_in or build_dir
    kos = [build_dir / (n.relative_to(base) if n.is_relative_to(base) else n)
           for n in names]
    kos = [k.with_suffix(".ko") for k in kos]
    kos = [k for k in kos if k.is_file()] or sorted(build_dir.rglob("*.ko"))
    return tuple(kos)


def without_btf(build: ModuleBuild, arch: Arch) -> ModuleBuild:
    """A copy of ``build``'s first module with .BTF and .BTF.base removed, beside it
    (<name>.nobtf.ko). Raises CommandError naming the build log."""
    ko = build.ko.with_name(f"{build.ko.stem}.nobtf.ko")
    proc.run([arch.tool("objcopy"), "--remove-section", ".BTF", "--remove-section",
              ".BTF.base", build.ko, ko], logfile=build.log, timeout=60)
    return replace(build, kos=(ko,))


def strip_section(build: ModuleBuild, arch: Arch, section: str) -> None:
    """Remove ``section`` from every .ko of ``build`` (--sabotage strip-*).
    Raises CommandError naming the build log."""
    for ko in build.kos:
        remove_section(ko, arch, section, build.log)


def remove_section(ko: Path, arch: Arch, section: str, log: Path | None = None) -> None:
    """Remove ``section`` from module ``ko`` in place (objcopy writes a new file, so a hard
    link to it elsewhere keeps the old one). Raises CommandError (naming ``log``)."""
    proc.run([arch.tool("objcopy"), "--remove-section", section, ko], logfile=log, timeout=60)
