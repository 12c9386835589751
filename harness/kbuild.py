"""Kernel builds: merged, validated config; O= build into a content-addressed cache."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from harness import buildlog, cacheentry, kconfig, proc
from harness.arches import Arch, make_argv
from harness.errors import CommandError, ConfigError
from harness.ksource import KernelSource
from harness.pahole import MIN_SPLIT_BTF, Pahole

# Bump when the build recipe changes so old cache entries are not reused.
CACHE_VERSION = 1
KCONFIG_DIR = Path(__file__).resolve().parent.parent / "kconfigs"
BASE_FRAGMENTS = ("base.config", "btf.config")
# Timeouts (s) of the build's steps. The compile took 7-9 min for tinyconfig and 25 min for
# defconfig on 2 cores: a build past 2 h is hung (a pahole that never ends, say).
CONFIGURE_TIMEOUT = 600
COMPILE_TIMEOUT = 7200
COPY_TIMEOUT = 900

Progress = Callable[[str], None]


@dataclass(frozen=True)
class KernelRequest:
    """Everything that decides what kernel gets built."""

    arch: Arch
    source: KernelSource
    pahole: Pahole  # the kernel's pahole: sets CONFIG_PAHOLE_VERSION and Makefile.btf flags
    user_kconfig: tuple[str, ...] = ()  # --kconfig-add items: files or CONFIG_X=v
    variant: str = ""  # "": kernel A; else kconfigs/<variant>.config on top (A', A_n)

    def fragments(self) -> tuple[Path, ...]:
        """Project fragments for this request, in merge order."""
        names = [*BASE_FRAGMENTS, self.arch.kconfig]
        return tuple(KCONFIG_DIR / n for n in names)

    def variant_fragments(self) -> tuple[Path, ...]:
        """Fragments applied over the merged ones (they may change their values)."""
        return (KCONFIG_DIR / f"{self.variant}.config",) if self.variant else ()

    def requested(self) -> dict[str, kconfig.Option]:
        """The merged options this kernel must end up with.

        Raises ConfigError on a conflict between project fragments or a bad user item.
        """
        missing = [p for p in self.fragments() if not p.is_file()]
        if missing:
            raise ConfigError(f"no kconfig fragment {missing[0]} for arch {self.arch.name}")
        merged = kconfig.merge(kconfig.parse_file(p) for p in self.fragments())
        overrides = [kconfig.parse_file(p) for p in self.variant_fragments()]
        overrides += [kconfig.parse_user_item(i) for i in self.user_kconfig]
        return kconfig.apply_overrides(merged, overrides)


@dataclass(frozen=True)
class KernelBuild:
    """A finished build in the cache."""

    dir: Path  # O= directory: usable with make -C <dir> M=<module>
    key: str
    arch: Arch
    source: KernelSource
    pahole: Pahole

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


def compiler_version(arch: Arch) -> str:
    """First line of ``<cc> --version``. Raises ToolMissing if the compiler is absent."""
    cc = proc.require_tool(arch.compiler())
    out = proc.output([cc, "--version"], timeout=60)
    return out.splitlines()[0] if out else cc


def cache_key(req: KernelRequest, compiler: str) -> str:
    """Content address of a build: source identity, merged config, compiler, pahole, recipe."""
    material = {
        "cache_version": CACHE_VERSION,
        "arch": req.arch.name,
        "source": req.source.identity,
        "config": kconfig.render(req.requested()),
        "compiler": compiler,
        "pahole": req.pahole.identity,
    }
    blob = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


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
    compiler = compiler_version(req.arch)
    key = cache_key(req, compiler)
    kernels = cache_dir / "kernels"
    variant = f"-{req.variant}" if req.variant else ""
    final = kernels / f"{req.arch.name}-{req.source.version}{variant}-{key}"
    build = KernelBuild(final, key, req.arch, req.source, req.pahole)

    def fill(tmp: Path) -> None:
        _build(req, tmp, progress, _seed_from_base(req, compiler, kernels, tmp))

    cacheentry.populate(final, (final / "kbtf-build.json").exists, fill, "kbtf-build.log")
    return build


def _make(req: KernelRequest, out: Path, *targets: str) -> list[str]:
    """The make argv for ``targets`` in build dir ``out``."""
    return make_argv(req.arch, source=req.source.path, out=out, pahole=req.pahole.path,
                     targets=targets)


def _seed_from_base(req: KernelRequest, compiler: str, kernels: Path, out: Path) -> Path | None:
    """A variant (A', A_n) starts from a copy of kernel A's finished tree when A is cached:
    kbuild then recompiles only the files whose options changed (fixdep records the options
    each file uses), instead of the whole kernel. Returns A's dir, or None (a clean build).
    """
    if not req.variant:
        return None
    base_req = replace(req, variant="")
    base = kernels / f"{req.arch.name}-{req.source.version}-{cache_key(base_req, compiler)}"
    if not (base / "kbtf-build.json").exists():
        return None
    proc.run(["cp", "-a", f"{base}/.", str(out)], timeout=COPY_TIMEOUT)
    for name in ("kbtf-build.json", "kbtf-build.log", "kbtf-fragment.config"):
        (out / name).unlink(missing_ok=True)
    return base


def _build(req: KernelRequest, out: Path, progress: Progress, seed: Path | None = None) -> None:
    """Configure, validate and build into ``out`` (incrementally, if it was seeded with a
    copy of ``seed``). Raises ConfigError, BuildFailure or HarnessError."""
    log = out / "kbtf-build.log"
    requested = req.requested()
    variant = f" variant {req.variant}" if req.variant else ""
    label = f"{req.arch.name} {req.source.label} {req.pahole.label}{variant}"
    how = f", incremental from a copy of {seed.name}" if seed else ""
    progress(f"kbtf: building kernel {label} in {out}{how} (log: {log})")
    if seed:
        log.write_text(f"# seeded with a copy of {seed} (cp -a), then built incrementally\n")
    try:
        proc.run(_make(req, out, "tinyconfig"), logfile=log, timeout=CONFIGURE_TIMEOUT)
        fragment = out / "kbtf-fragment.config"
        fragment.write_text(kconfig.render(requested))
        merge = req.source.path / "scripts/kconfig/merge_config.sh"
        # Run in the build dir: merge_config.sh writes ./.tmp.config.* into its working
        # directory, and nothing may be written into the source tree.
        proc.run([merge, "-m", "-O", out, out / ".config", fragment], logfile=log, cwd=out,
                 env={"ARCH": req.arch.kernel_arch}, timeout=CONFIGURE_TIMEOUT)
        proc.run(_make(req, out, "olddefconfig"), logfile=log, timeout=CONFIGURE_TIMEOUT)
    except CommandError as exc:
        raise buildlog.classify(f"configuring kernel {label}", exc, log) from None
    final = kconfig.parse((out / ".config").read_text(), ".config")
    known = kconfig.kconfig_symbols(
        p.read_text(errors="replace") for p in req.source.path.rglob("Kconfig*") if p.is_file()
    )
    dropped = kconfig.missing_after(requested, final, known)
    if dropped:
        lines = "; ".join(d.describe() for d in dropped)
        raise ConfigError(f"olddefconfig dropped requested options: {lines}", log=log)
    configured = final.get("CONFIG_PAHOLE_VERSION")
    if configured is None or configured.value != str(req.pahole.code):
        raise ConfigError(
            f"CONFIG_PAHOLE_VERSION={configured.value if configured else 'unset'} but the "
            f"kernel's pahole {req.pahole.path} is {req.pahole.version}: Kconfig saw another "
            "pahole", log=log)
    progress(f"kbtf: config ok ({len(requested)} options verified, CONFIG_PAHOLE_VERSION="
             f"{req.pahole.code}), compiling")
    _compile(req, out, log, progress)
    meta = {
        "arch": req.arch.name,
        "source": req.source.identity,
        "source_path": str(req.source.path),
        "kernel_version": req.source.version,
        "pahole": {"path": str(req.pahole.path), "version": req.pahole.version,
                   "source": str(req.pahole.source or ""), "build": req.pahole.build},
        "compiler": compiler_version(req.arch),
        "pahole_version_config": configured.value,
        "pahole_features": list(req.pahole.features),
        "reproduce": "every command, with its exact argv, follows a '$ ' in kbtf-build.log",
        "seeded_from": str(seed) if seed else None,
    }
    (out / "kbtf-build.json").write_text(json.dumps(meta, indent=2) + "\n")


def _compile(req: KernelRequest, out: Path, log: Path, progress: Progress) -> None:
    """Run the parallel build, reporting progress every 30 s.

    Raises BuildFailure (the kernel, compiler or pahole failed or hung) or HarnessError
    (the environment stopped it), naming the log.
    """
    argv = _make(req, out, f"-j{os.cpu_count() or 1}")
    start = time.monotonic()
    last, steps, current = start, 0, ""

    def on_line(line: str) -> None:
        nonlocal last, steps, current
        if line.startswith("  ") and not line.startswith("   "):
            steps += 1
            current = line.strip()
        now = time.monotonic()
        if now - last >= 30:
            last = now
            progress(f"kbtf: [{now - start:5.0f}s] {steps} steps, {current}")

    label = f"{req.arch.name} {req.source.label} {req.pahole.label}"
    try:
        rc = proc.stream(argv, timeout=COMPILE_TIMEOUT, logfile=log, on_line=on_line)
    except CommandError as exc:
        raise buildlog.classify(f"kernel build {label}", exc, log) from None
    if rc != 0:
        failed = CommandError(f"make exit {rc}", log=log)
        raise buildlog.classify(f"kernel build {label}", failed, log)
    progress(f"kbtf: kernel built in {time.monotonic() - start:.0f}s ({steps} steps)")
