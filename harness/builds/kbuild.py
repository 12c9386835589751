"""Kernel builds: merged, validated config; O= build into a content-addressed cache."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from harness import cacheentry, kconfig, proc
from harness.arches import GCC, Arch, Toolchain, make_argv
from harness.builds import buildlog, cacheremote
from harness.errors import CommandError, ConfigError
from harness.plan import toolchain
from harness.plan.kernelreq import BPF_CI_BASE, KBTF_BASE, KCONFIG_DIR, KernelRequest
from harness.plan.ksource import KernelSource
from harness.plan.pahole import MIN_SPLIT_BTF, Pahole

# The cache key (cache_key) holds every input kbtf can read: the source's identity, the
# merged config, the toolchain's programs (identity()), the pahole's content and this number.
# The rule: bump CACHE_VERSION in the same commit as any change to what a given key builds
# that those inputs do not show -- the make command line (make_argv, Toolchain.make_vars),
# the config steps (tinyconfig, merge_config.sh, olddefconfig), what _build writes into the
# build dir, the layout the suites read. Editing kconfigs/ needs no bump: the merged config
# is in the key. A change to how a seeded build is prepared (_seed) bumps SEED_RECIPE
# instead: seeded entries of another recipe are rebuilt, clean builds stay valid.
CACHE_VERSION = 2
SEED_RECIPE = 2
# Timeouts (s) of the build's steps. The compile took 7-9 min for tinyconfig and 25 min for
# defconfig on 2 cores: a build past 2 h is hung (a pahole that never ends, say).
CONFIGURE_TIMEOUT = 600
COMPILE_TIMEOUT = 7200
COPY_TIMEOUT = 900

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KernelBuild:
    """A finished build in the cache."""

    dir: Path  # O= directory: usable with make -C <dir> M=<module>
    key: str
    arch: Arch
    source: KernelSource
    pahole: Pahole
    toolchain: Toolchain = GCC

    @property
    def image(self) -> Path:
        """Bootable image (bzImage, Image)."""
        return self.dir / self.arch.image

    @property
    def vmlinux(self) -> Path:
        """vmlinux with .BTF."""
        return self.dir / "vmlinux"

    @property
    def log(self) -> Path:
        """The build log."""
        return self.dir / "kbtf-build.log"

    def config(self) -> dict[str, kconfig.Option]:
        """The final .config."""
        return kconfig.parse((self.dir / ".config").read_text(), str(self.dir / ".config"))


def cache_key(req: KernelRequest, tools: Mapping[str, str]) -> str:
    """Content address of a build: source identity, merged config, the toolchain's programs
    (``tools``: toolchain.identity), the pahole's content, the recipe (CACHE_VERSION)."""
    material = {
        "cache_version": CACHE_VERSION,
        "arch": req.arch.name,
        "source": req.source.identity,
        "config": kconfig.render(req.requested()),
        "toolchain": req.toolchain.name,
        "tools": dict(tools),
        "pahole": req.pahole.key,
    }
    if req.config_base != KBTF_BASE:
        material["config_base"] = req.config_base
    blob = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def is_complete(entry: Path) -> bool:
    """Whether cache entry ``entry`` is a finished build kbtf may use: its kbtf-build.json
    exists and, if it was seeded, with the current SEED_RECIPE."""
    try:
        meta = json.loads((entry / "kbtf-build.json").read_text())
    except (OSError, ValueError):
        return False
    return not meta.get("seeded_from") or meta.get("seed_recipe") == SEED_RECIPE


def cached_entry(req: KernelRequest, cache_dir: Path) -> Path | None:
    """The finished cache entry of ``req``, if there is one (nothing is built)."""
    key = cache_key(req, toolchain.identity(req.toolchain, req.arch))
    entry = cache_dir / "kernels" / entry_name(req, key)
    return entry if is_complete(entry) else None


def entry_name(req: KernelRequest, key: str) -> str:
    """The cache dir name: x86_64-6.12.117[-llvm-19][-bpf-ci][-prime]-<key>."""
    chain = "" if req.toolchain == GCC else f"-{req.toolchain.name}"
    variant = f"-{req.variant}" if req.variant else ""
    base = "" if req.config_base == KBTF_BASE else f"-{req.config_base}"
    return f"{req.arch.name}-{req.source.version}{chain}{base}{variant}-{key}"


def default_cache_dir() -> Path:
    """$KBTF_CACHE_DIR, else $XDG_CACHE_HOME/kbtf, else ~/.cache/kbtf."""
    if env := os.environ.get("KBTF_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kbtf"


def ensure_kernel(req: KernelRequest, cache_dir: Path, progress: Progress) -> KernelBuild:
    """Return the cached build for ``req``, building it first if needed.

    One build per key across processes (FileLock); the build happens in a temp dir
    renamed into place only when complete. Raises ConfigError (invalid or dropped
    config), BuildFailure (the kernel or its pahole failed or hung) or HarnessError (the
    environment stopped the build), naming the log.
    """
    if req.pahole.code < MIN_SPLIT_BTF:
        raise ConfigError(
            f"pahole {req.pahole.version} < 1.19 cannot encode split BTF: "
            "DEBUG_INFO_BTF_MODULES would be dropped; use a newer pahole"
        )
    tools = toolchain.identity(req.toolchain, req.arch)
    key = cache_key(req, tools)
    kernels = cache_dir / "kernels"
    final = kernels / entry_name(req, key)
    build = KernelBuild(final, key, req.arch, req.source, req.pahole, req.toolchain)

    def fill(tmp: Path) -> None:
        seed = nearest_build(req, tools, kernels)
        if seed is not None:
            _seed(seed, req, tmp)
        _build(req, tmp, progress, tools, seed)

    cacheremote.populate(final, is_complete, fill, "kbtf-build.log", progress,
                         excludes=cacheremote.SLIM_EXCLUDES, relocate=True,
                         adopt=lambda tmp, origin: cacheremote.relocate(
                             tmp, final, req.source.path, origin))
    return build


def _make(req: KernelRequest, out: Path, *targets: str) -> list[str]:
    """The make argv for ``targets`` in build dir ``out``."""
    return make_argv(req.arch, source=req.source.path, out=out, pahole=req.pahole.path,
                     toolchain=req.toolchain, targets=targets)


def _requested_digest(req: KernelRequest) -> str:
    """sha256 of the merged config a request asks for (kbtf-build.json records it)."""
    return hashlib.sha256(kconfig.render(req.requested()).encode()).hexdigest()[:16]


def nearest_build(req: KernelRequest, tools: Mapping[str, str], kernels: Path) -> Path | None:
    """The cached build a new build of ``req`` starts from, if any: one of the same arch,
    source and toolchain programs (so every object it kept is one this build would make),
    preferring the same config with another pahole (only the options that reference
    CONFIG_PAHOLE_VERSION and the BTF link steps differ), then, for a variant, kernel A of
    the same pahole (kbuild recompiles the files whose options changed: fixdep records the
    options each file uses). None: a clean build.
    """
    same_config: list[Path] = []
    base: list[Path] = []
    base_digest = _requested_digest(replace(req, variant=""))
    digest = _requested_digest(req)
    for meta_file in sorted(kernels.glob("*/kbtf-build.json")):
        if not is_complete(meta_file.parent):
            continue
        meta = json.loads(meta_file.read_text())
        if meta.get("slim"):  # pulled without its objects: nothing to rebuild from
            continue
        if (meta.get("cache_version"), meta.get("arch"), meta.get("source"), meta.get("tools")
                ) != (CACHE_VERSION, req.arch.name, req.source.identity, dict(tools)):
            continue
        if meta.get("requested") == digest:
            same_config.append(meta_file.parent)
        elif req.variant and meta.get("requested") == base_digest and \
                meta.get("pahole", {}).get("key") == req.pahole.key:
            base.append(meta_file.parent)
    candidates = same_config or base
    return candidates[0] if candidates else None


# Products of the final link, any of which kbuild would keep (with the old pahole's BTF)
# when only the pahole changed: the link rule's command line does not name pahole. 7.x
# links vmlinux.unstripped (link-vmlinux.sh encodes BTF there) and makes vmlinux from it by
# objcopy, so removing vmlinux alone would re-strip the old BTF.
FINAL_LINK = ("vmlinux", "vmlinux.unstripped")


def _seed(seed: Path, req: KernelRequest, out: Path) -> None:
    """Fill ``out`` with a copy of build ``seed``. When the pahole differs, the final link's
    products (FINAL_LINK) are removed, so that link-vmlinux.sh runs again and re-encodes the
    vmlinux BTF with this pahole, in every era."""
    proc.run(["cp", "-a", f"{seed}/.", str(out)], timeout=COPY_TIMEOUT)
    # Recorded absolute paths (objtool's .cmd files, 7.x's Makefile) name the copy, so that
    # make sees the same commands and rebuilds only what the new config or pahole changes.
    cacheentry.relocate_text(out, out, old=seed)
    meta = json.loads((seed / "kbtf-build.json").read_text())
    for name in ("kbtf-build.json", "kbtf-build.log", "kbtf-fragment.config"):
        (out / name).unlink(missing_ok=True)
    if meta.get("pahole", {}).get("key") != req.pahole.key:
        for name in FINAL_LINK:
            (out / name).unlink(missing_ok=True)
    # The in-kernel headers archive (IKHEADERS) holds include/generated/autoconf.h, but
    # kernel/gen_kheaders.sh leaves autoconf.h out of what decides a rebuild (6.12: its md5;
    # 7.x: its deps): kept, the copy's archive would show the seed's config (caught by the
    # kheaders suite as CONFIG_PAHOLE_VERSION=130 in a 1.24 kernel).
    (out / "kernel" / "kheaders_data.tar.xz").unlink(missing_ok=True)


def _build(req: KernelRequest, out: Path, progress: Progress, tools: Mapping[str, str],
           seed: Path | None = None) -> None:
    """Configure, validate and build into ``out`` (incrementally, if it was seeded with a
    copy of ``seed``). Raises ConfigError, BuildFailure or HarnessError."""
    log = out / "kbtf-build.log"
    requested = req.requested()
    variant = f" variant {req.variant}" if req.variant else ""
    label = f"{req.arch.name} {req.source.label} {req.toolchain.label} {req.pahole.label}{variant}"
    how = f", incremental from a copy of {seed.name}" if seed else ""
    progress(f"kbtf: building kernel {label} in {out}{how} (log: {log})")
    if seed:
        log.write_text(f"# seeded with a copy of {seed} (cp -a), then built incrementally\n")
    _configure(req, out, log, label, requested)
    configured = _validate(req, out, log, requested)
    progress(f"kbtf: config ok ({len(requested)} options verified, CONFIG_PAHOLE_VERSION="
             f"{req.pahole.code}), compiling")
    started = time.monotonic()
    _compile(req, out, log, progress)
    meta = {
        "build_seconds": round(time.monotonic() - started),
        "cache_version": CACHE_VERSION,
        "arch": req.arch.name,
        "source": req.source.identity,
        "source_path": str(req.source.path),
        "kernel_version": req.source.version,
        "pahole": {"path": str(req.pahole.path), "version": req.pahole.version,
                   "source": str(req.pahole.source or ""), "build": req.pahole.build,
                   "key": req.pahole.key},
        "toolchain": req.toolchain.name,
        "tools": dict(tools),
        "requested": _requested_digest(req),
        "variant": req.variant,
        "pahole_version_config": configured,
        "pahole_features": list(req.pahole.features),
        "reproduce": "every command, with its exact argv, follows a '$ ' in kbtf-build.log",
        "seeded_from": str(seed) if seed else None,
        "seed_recipe": SEED_RECIPE if seed else None,
    }
    (out / "kbtf-build.json").write_text(json.dumps(meta, indent=2) + "\n")


def _configure(req: KernelRequest, out: Path, log: Path, label: str,
               requested: Mapping[str, kconfig.Option]) -> None:
    """tinyconfig, the kernel's merge_config.sh with the requested options, olddefconfig;
    for BPF CI's configuration, the requested options as the whole .config (BPF CI's
    concatenated files: no base config), olddefconfig. Raises what buildlog.classify makes
    of a failing step."""
    try:
        if req.config_base == BPF_CI_BASE:
            (out / ".config").write_text(kconfig.render(dict(requested)))
            proc.run(_make(req, out, "olddefconfig"), logfile=log, timeout=CONFIGURE_TIMEOUT)
            return
        proc.run(_make(req, out, "tinyconfig"), logfile=log, timeout=CONFIGURE_TIMEOUT)
        fragment = out / "kbtf-fragment.config"
        fragment.write_text(kconfig.render(dict(requested)))
        merge = req.source.path / "scripts/kconfig/merge_config.sh"
        # Run in the build dir: merge_config.sh writes ./.tmp.config.* into its working
        # directory, and nothing may be written into the source tree.
        proc.run([merge, "-m", "-O", out, out / ".config", fragment], logfile=log, cwd=out,
                 env={"ARCH": req.arch.kernel_arch}, timeout=CONFIGURE_TIMEOUT)
        proc.run(_make(req, out, "olddefconfig"), logfile=log, timeout=CONFIGURE_TIMEOUT)
    except CommandError as exc:
        raise buildlog.classify(f"configuring kernel {label}", exc, log) from None


def _validate(req: KernelRequest, out: Path, log: Path,
              requested: Mapping[str, kconfig.Option]) -> str:
    """Every requested option survived olddefconfig, and CONFIG_PAHOLE_VERSION is the
    kernel pahole's; returns that value. Raises ConfigError naming what was dropped."""
    final = kconfig.parse((out / ".config").read_text(), ".config")
    known = kconfig.kconfig_symbols(
        p.read_text(errors="replace") for p in req.source.path.rglob("Kconfig*") if p.is_file()
    )
    dropped = kconfig.missing_after(dict(requested), final, known)
    if req.config_base == BPF_CI_BASE:
        # BPF CI concatenates its files and lets olddefconfig settle them (a later member of
        # a choice unsets an earlier one): what it drops of the tree's is noted, as BPF CI
        # gets it too; kbtf's own arch fragment (console, virtio) must hold.
        noted = [d for d in dropped if not d.option.source.startswith(str(KCONFIG_DIR))]
        for d in noted:
            with log.open("a") as f:
                f.write(f"# BPF CI's config, as olddefconfig settles it: {d.describe()}\n")
        dropped = [d for d in dropped if d not in noted]
    if dropped:
        lines = "; ".join(d.describe() for d in dropped)
        raise ConfigError(f"olddefconfig dropped requested options: {lines}", log=log)
    configured = final.get("CONFIG_PAHOLE_VERSION")
    if configured is None or configured.value != str(req.pahole.code):
        raise ConfigError(
            f"CONFIG_PAHOLE_VERSION={configured.value if configured else 'unset'} but the "
            f"kernel's pahole {req.pahole.path} is {req.pahole.version}: Kconfig saw another "
            "pahole", log=log)
    return configured.value


class StepReporter:
    """A make output line handler: counts kbuild's step lines ("  CC      mm/x.o") and
    reports the count and the current step every 30 s."""

    def __init__(self, progress: Progress, start: float) -> None:
        self.progress, self.start, self.last = progress, start, start
        self.steps, self.current = 0, ""

    def __call__(self, line: str) -> None:
        if line.startswith("  ") and not line.startswith("   "):
            self.steps += 1
            self.current = line.strip()
        now = time.monotonic()
        if now - self.last >= 30:
            self.last = now
            self.progress(f"kbtf: [{now - self.start:5.0f}s] {self.steps} steps, {self.current}")


def _compile(req: KernelRequest, out: Path, log: Path, progress: Progress) -> None:
    """Run the parallel build, reporting progress every 30 s.

    Raises BuildFailure (the kernel, compiler or pahole failed or hung) or HarnessError
    (the environment stopped it), naming the log.
    """
    argv = _make(req, out, f"-j{os.cpu_count() or 1}")
    start = time.monotonic()
    on_line = StepReporter(progress, start)
    label = f"{req.arch.name} {req.source.label} {req.toolchain.name} {req.pahole.label}"
    try:
        rc = proc.stream(argv, timeout=COMPILE_TIMEOUT, logfile=log, on_line=on_line)
    except CommandError as exc:
        raise buildlog.classify(f"kernel build {label}", exc, log) from None
    if rc != 0:
        failed = CommandError(f"make exit {rc}", log=log)
        raise buildlog.classify(f"kernel build {label}", failed, log)
    progress(f"kbtf: kernel built in {time.monotonic() - start:.0f}s ({on_line.steps} steps)")
