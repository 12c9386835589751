"""DKMS packages built by the real dkms (Debian's `dkms`), exactly as `dkms build` builds
them on a user's machine (its dkms.conf's MAKE lines, PRE_BUILD, BUILT_MODULE_LOCATION,
BUILD_EXCLUSIVE_*), but in private trees under the run dir: --dkmstree, --sourcetree,
--installtree, and --kernelsourcedir = the kernel's build dir or the distro's headers.
Nothing touches /var/lib/dkms, /lib/modules or the machine's keys: dkms is told of a signing
program that does not exist, so it signs nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import cacheentry, kconfig, proc, provision
from harness.build import buildlog
from harness.build.modbuild import SKIPPED_BTF, BuildTarget, ModuleBuild
from harness.errors import BuildFailure, CommandError, ConfigError, MissingPrerequisite
from harness.plan import dkmsconf
from harness.plan.pahole import Pahole

DKMS_TIMEOUT = 1800  # one dkms build (a module and its MAKE lines)
# dkms exits 77 when a BUILD_EXCLUSIVE_* rule keeps the kernel out.
EXCLUDED = 77
# What dkms is given as its signing program: absent, so it signs nothing and makes no key.
NO_SIGNING = "/nonexistent/kbtf-signs-no-module"


def kernel_release(target: BuildTarget) -> str:
    """The release (uname -r) of ``target``'s kernel, from its build dir."""
    release = target.dir / "include" / "config" / "kernel.release"
    return release.read_text().strip()


def build(source: Path, target: BuildTarget, release: str, outdir: Path,
          pahole: Pahole | None) -> ModuleBuild:
    """dkms package source ``source`` (a dir with dkms.conf) built by dkms for kernel
    ``release`` of ``target``, in private trees under ``outdir``; ``pahole`` first on PATH
    (None: the machine's, as a distro's users build).

    Raises MissingPrerequisite quoting the BUILD_EXCLUSIVE_* rule that keeps this kernel
    out; BuildFailure naming dkms's make.log with its telling line (the compiler's error,
    modpost's undefined symbol); HarnessError for the environment.
    """
    arch = target.arch
    conf = dkmsconf.parse(source / "dkms.conf", release, str(target.dir), arch.name)
    trees = outdir / "dkms"
    shutil.rmtree(trees, ignore_errors=True)
    src_tree, dkms_tree, install_tree = trees / "src", trees / "dkmstree", trees / "modules"
    shutil.copytree(source, src_tree / f"{conf.name}-{conf.version}", symlinks=True)
    for d in (dkms_tree, install_tree):
        d.mkdir(parents=True)
    log = outdir / "dkms.log"
    argv = ["dkms", "build", "-m", conf.name, "-v", conf.version, "-k", release, "-a",
            arch.name, f"--dkmstree={dkms_tree}", f"--sourcetree={src_tree}",
            f"--installtree={install_tree}", f"--kernelsourcedir={target.dir}"]
    res = proc.run(argv, logfile=log, timeout=DKMS_TIMEOUT, check=False,
                   env=_environment(target, pahole, trees))
    if res.returncode == EXCLUDED:
        rule = dkmsconf.exclusion(conf, release, arch.name, _config(target))
        raise MissingPrerequisite(f"{conf.ident}: {rule or 'its BUILD_EXCLUSIVE rules'} "
                                  f"(dkms: not built for {release}, log: {log})")
    make_log = dkms_tree / conf.name / conf.version / "build" / "make.log"
    if res.returncode != 0:
        failed = CommandError(f"dkms build exit {res.returncode}", log=log)
        where = make_log if make_log.is_file() else log
        raise buildlog.classify(f"dkms build of {conf.ident}", failed, where) from None
    built = dkms_tree / conf.name / conf.version / release / arch.name / "module"
    kos = tuple(sorted(built.glob("*.ko")))
    if not kos:
        raise BuildFailure(f"dkms build of {conf.ident} left no .ko in {built}", log=log)
    made = dkms_tree / conf.name / conf.version / release / arch.name / "log" / "make.log"
    text = made.read_text(errors="replace") if made.is_file() else ""
    return ModuleBuild(conf.name, "default", kos, made if made.is_file() else log,
                       SKIPPED_BTF in text)


def _environment(target: BuildTarget, pahole: Pahole | None, trees: Path) -> dict[str, str]:
    """dkms's environment: no signing, ``pahole`` first on PATH, and ARCH/CROSS_COMPILE for
    a foreign kernel (dkms's make lines pass neither)."""
    env = {"sign_file": NO_SIGNING, "TMPDIR": str(trees)}
    if pahole is not None:
        bindir = trees / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        (bindir / "pahole").symlink_to(pahole.path)
        env["PATH"] = f"{bindir}:{proc.tool_path()}"
    arch = target.arch
    if not arch.is_host():
        env |= {"ARCH": arch.kernel_arch, "CROSS_COMPILE": arch.cross_compile}
    if target.toolchain.family == "llvm":
        env["LLVM"] = target.toolchain.suffix or "1"
    return env


def _config(target: BuildTarget) -> dict[str, str]:
    """CONFIG_X -> value of ``target``'s .config (empty if it has none)."""
    path = target.dir / ".config"
    if not path.is_file():
        return {}
    return {name: opt.value for name, opt in kconfig.parse(path.read_text(), str(path)).items()}


def fetch_package(cache: Path, suite: str, package: str, version: str, dest: Path) -> Path:
    """Debian's DKMS package ``package`` (``version``, from ``suite``) unpacked at ``dest``
    (not installed); its source dir, the one usr/src/*/dkms.conf. Raises ConfigError if it
    holds no dkms.conf, CommandError naming the log."""

    def fill(tmp: Path) -> None:
        log = tmp / "fetch.log"
        debs = provision.download(cache, suite, (f"{package}={version}",), tmp / ".debs", log)
        proc.run(["dpkg-deb", "-x", debs[0], tmp / "root"], logfile=log, timeout=300)
        shutil.rmtree(tmp / ".debs")

    cacheentry.populate(dest, (dest / "root").is_dir, fill, "fetch.log")
    confs = sorted((dest / "root" / "usr" / "src").glob("*/dkms.conf"))
    if len(confs) != 1:
        raise ConfigError(f"--dkms {package}: {len(confs)} dkms.conf in the package "
                          f"({dest}/root/usr/src): kbtf builds packages with exactly one")
    return confs[0].parent
