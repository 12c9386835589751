"""DKMS packages built by the real dkms (Debian's `dkms`), exactly as `dkms build` builds
them on a user's machine (its dkms.conf's MAKE lines, PRE_BUILD, BUILT_MODULE_LOCATION,
BUILD_EXCLUSIVE_*), but in private trees under the run dir: --dkmstree, --sourcetree,
--installtree, and --kernelsourcedir = the kernel's build dir or the distro's headers. dkms
runs confined (harness/sandbox.py): nothing but those trees is writable, and the machine's
/etc/dkms, /var/lib/dkms, keys and /lib/modules are hidden, so neither a framework
override, a key nor the host's module compression decides anything; dkms is told of a
signing program that does not exist, so it signs nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness import cacheentry, proc, provision, sandbox
from harness.builds import buildlog
from harness.builds.modbuild import SKIPPED_BTF, BuildTarget, ModuleBuild, copy_module
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
    (None: the machine's, as a distro's users build). The package is copied by the rule of
    every user tree (modbuild.copy_module: no link out of it), its dkms.conf evaluated and
    dkms run confined (harness/sandbox.py: only the private trees writable, the machine's
    dkms configuration, keys and /lib/modules hidden).

    Raises MissingPrerequisite quoting the BUILD_EXCLUSIVE_* rule dkms applied; BuildFailure
    naming dkms's make.log with its telling line (the compiler's error, modpost's undefined
    symbol); ConfigError for a dkms.conf without a package, version or module;
    HarnessError for the environment.
    """
    arch = target.arch
    trees = outdir / "dkms"
    shutil.rmtree(trees, ignore_errors=True)
    src_tree, dkms_tree, install_tree = trees / "src", trees / "dkmstree", trees / "modules"
    staged = src_tree / "staged"
    copy_module(source, staged)
    conf = evaluate(staged / "dkms.conf", release, target.dir, arch.name, trees)
    staged.rename(src_tree / f"{conf.name}-{conf.version}")
    for d in (dkms_tree, install_tree):
        d.mkdir(parents=True)
    log = outdir / "dkms.log"
    argv = ["dkms", "build", "-m", conf.name, "-v", conf.version, "-k", release, "-a",
            arch.name, f"--dkmstree={dkms_tree}", f"--sourcetree={src_tree}",
            f"--installtree={install_tree}", f"--kernelsourcedir={target.dir}"]
    res = proc.run(sandbox.confined(argv, [trees]), logfile=log, timeout=DKMS_TIMEOUT,
                   check=False, env=_environment(target, pahole, trees))
    if res.returncode == EXCLUDED:
        rule = conf.excluded_by or "its BUILD_EXCLUSIVE rules"
        raise MissingPrerequisite(f"{conf.ident}: {rule} (dkms: not built for {release}, "
                                  f"log: {log})")
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


def evaluate(conf: Path, release: str, kernel_dir: Path, arch: str, scratch: Path
             ) -> dkmsconf.DkmsConf:
    """dkms.conf ``conf`` sourced by bash as dkms sources it for kernel ``release`` (build
    dir ``kernel_dir``) of ``arch``, with dkms's own BUILD_EXCLUSIVE tests, confined with
    only ``scratch`` writable. Raises ConfigError (no package, version or module)."""
    out = proc.run(sandbox.confined(["bash", "-c", dkmsconf.EVAL, "dkms.conf", release,
                                     str(kernel_dir), arch, conf], [scratch]),
                   timeout=dkmsconf.SYNTAX_TIMEOUT, check=False, cwd=conf.parent,
                   env={"PATH": proc.tool_path(), "TMPDIR": str(scratch)})
    return dkmsconf.from_eval(conf, out.stdout)


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
