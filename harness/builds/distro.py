"""Distro kernels (--distro, --distro-deb): a distribution's own kernel image, headers and
kbuild packages, unpacked into the cache -- never installed -- to run the Ubuntu SRU plan's
check: build an out-of-tree module against the headers package and look for .BTF.

The headers packages use absolute paths (the flavour's Makefile is `include
/usr/src/linux-headers-<ver>-common/Makefile`; /lib/modules/<ver>/build is an absolute
link). kbtf rewrites the absolute `/usr/src/` paths of the flavour's Makefile to the
unpacked tree and builds with `make -C <unpacked headers>`; the relative `scripts` and
`tools` links into linux-kbuild work as they are.

Modules are built on this machine when it has the compiler the headers name and can run
their kbuild programs. Otherwise a Debian kernel's modules are built in a build root of its
own suite (harness/builds/buildroot.py: trixie's gcc-14, glibc 2.38 and pahole), whose packages
are the headers' and kbuild's own dependencies; for local packages (--distro-deb) it is a
one-line error naming what is missing, before any build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from harness import cacheentry, kconfig, proc, provision
from harness.arches import ARCHES, GCC, Arch, Toolchain, get_arch
from harness.builds import buildroot
from harness.builds.buildroot import BuildRoot
from harness.errors import ConfigError, HarnessError
from harness.plan import pahole
from harness.plan.pahole import Pahole

UNPACK_TIMEOUT = 300  # dpkg-deb -x of a ~70 MB image package
# Part of every distro entry's key: a change to _unpack's products unpacks again.
UNPACK_RECIPE = 2  # 2: merged-/usr packages (trixie) get the lib -> usr/lib link


@dataclass(frozen=True)
class DebianKernel:
    """Where Debian ships a kernel flavour: the suite and the meta packages naming it
    ({flavour}: the Debian architecture, e.g. amd64, arm64)."""

    suite: str
    image_meta: str
    headers_meta: str


# --distro debian:NAME[:ARCH] (the generic flavour of ARCH, default x86_64).
DEBIAN_DISTROS: Mapping[str, DebianKernel] = {
    "bookworm": DebianKernel("bookworm", "linux-image-{flavour}", "linux-headers-{flavour}"),
    "bookworm-security": DebianKernel("bookworm-security", "linux-image-6.12-{flavour}",
                                      "linux-headers-6.12-{flavour}"),
    "trixie": DebianKernel("trixie", "linux-image-{flavour}", "linux-headers-{flavour}"),
}
# Architectures whose distro kernels kbtf can boot: its initramfs loads the virtio
# transport (pci, ccw) and 9p modules.
DISTRO_ARCHES = ("x86_64", "aarch64", "s390x")


@dataclass(frozen=True)
class DistroKernel:
    """One distro kernel, unpacked: what the SRU plan installs, in a cache dir."""

    id: str  # test-id name: "debian-bookworm-6.1.0-50-amd64", "deb-6.1.0-50-amd64"
    release: str  # uname -r: 6.1.0-50-amd64
    root: Path  # the unpacked packages (boot/, lib/modules/, usr/src/, usr/lib/)
    debs: tuple[Path, ...]  # the packages it came from
    spec: str = ""  # the --distro SPEC that gives it again ("": local --distro-deb files)
    arch_name: str = "x86_64"  # kbtf's name of the kernel's architecture
    build_root: BuildRoot | None = None  # where modules are built (None: on this machine)
    fetch_from: DistroPackages | None = None  # Debian's: what the fetch stage downloads

    @property
    def group(self) -> str:
        """Itself (Unit.group): its tests share its guest."""
        return self.id

    @property
    def describe(self) -> str:
        return f"{self.arch_name} {self.release} (distro)"

    @property
    def source_kernel(self) -> None:
        return None  # unpacked from its packages

    def facts(self) -> dict[str, object]:
        """What summary.md and matrix.json say of the kernel before any test ran (its
        packages unpacked: the fetch stage ran)."""
        config_pahole = self.config().get("CONFIG_PAHOLE_VERSION")
        return {"arch": self.arch_name, "kernel": self.release, "toolchain": "distro",
                "config_pahole_version": config_pahole.value if config_pahole else "-",
                "module_pahole": (f"{self.build_root.suite} build root's" if self.build_root
                                  else "system"),
                "headers_vmlinux": self.vmlinux.is_file(),
                "packages": [d.name for d in self.debs]}

    def rerun(self, tests: Sequence[str] = ()) -> str:
        """The command line that reruns just this kernel's tests."""
        args = ["./kbtf", "pytest", "suites/"]
        if self.spec:
            args += ["--distro", self.spec]
        else:
            for deb in self.debs:
                args += ["--distro-deb", str(deb)]
        return shlex.join([*args, "-k", self.id])

    @property
    def headers(self) -> Path:
        """The flavour's headers dir: make -C here (the SRU plan's /lib/modules/<ver>/build)."""
        return self.root / "usr" / "src" / f"linux-headers-{self.release}"

    @property
    def image(self) -> Path:
        """The bootable kernel image."""
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules(self) -> Path:
        """The image's /lib/modules/<release>."""
        return self.root / "lib" / "modules" / self.release

    @property
    def dir(self) -> Path:
        """What module builds run make -C in (modbuild.BuildTarget): the headers."""
        return self.headers

    @property
    def arch(self) -> Arch:
        """The kernel's architecture (its modules are cross-built on another host)."""
        return get_arch(self.arch_name)

    @property
    def toolchain(self) -> Toolchain:
        """Debian builds its kernels with gcc (the headers' .kernelvariables name it)."""
        return GCC

    @property
    def vmlinux(self) -> Path:
        """The vmlinux the headers package ships for module BTF (absent in some)."""
        return self.headers / "vmlinux"

    def config(self) -> dict[str, kconfig.Option]:
        """The headers' .config."""
        path = self.headers / ".config"
        return kconfig.parse(path.read_text(), str(path))

    def compiler(self) -> str:
        """The C compiler a module build runs: the headers' .kernelvariables' CC (Debian),
        else the kernel Makefile's $(CROSS_COMPILE)gcc, with kbtf's make variables.
        Raises CommandError if make cannot read them, HarnessError if they name none."""
        variables = self.headers / ".kernelvariables"
        argv = ["make", "-s", "--no-print-directory", "-f",
                str(variables) if variables.is_file() else os.devnull,
                f"ARCH={self.arch.kernel_arch}", *self.toolchain.make_vars(self.arch),
                "--eval", "CC = $(CROSS_COMPILE)gcc", "--eval", "kbtf-cc: ; @echo $(CC)",
                "kbtf-cc"]
        words = proc.output(argv, timeout=60).split()
        if not words:
            raise HarnessError(f"{variables}: no CC")
        return words[-1]

    def module_pahole(self) -> Pahole:
        """The pahole the module builds run: the build root's, else the one on PATH."""
        if self.build_root is not None:
            return self.build_root.pahole()
        return pahole.system_pahole()


def host_gaps(kernel: DistroKernel) -> list[str]:
    """What this machine lacks to build modules against ``kernel``'s headers: the
    compiler they name, a C library as new as their kbuild programs need (the ELF version
    needs of the linux-kbuild tree the headers' scripts link to). Raises as compiler()."""
    gaps = []
    compiler = kernel.compiler()
    if shutil.which(compiler) is None:
        gaps.append(f"{compiler} (the headers' compiler) is not installed")
    needed = glibc_needed((kernel.headers / "scripts").resolve().parent)
    libc = os.confstr("CS_GNU_LIBC_VERSION") or "glibc 0"  # "glibc 2.36"
    host = tuple(int(p) for p in libc.split()[-1].split("."))
    if needed > host:
        gaps.append(f"its kbuild programs need GLIBC_{'.'.join(map(str, needed))}, this "
                    f"machine has {'.'.join(map(str, host))}")
    return gaps


def glibc_needed(tree: Path) -> tuple[int, ...]:
    """The newest GLIBC_x.y symbol version any executable ELF file under ``tree`` needs."""
    versions = (tuple(int(p) for p in name.removeprefix("GLIBC_").split("."))
                for path in tree.rglob("*") for name in _version_needs(path)
                if name.startswith("GLIBC_2"))
    return max(versions, default=())


def _version_needs(path: Path) -> list[str]:
    """The symbol versions (GLIBC_2.34, ...) executable ELF file ``path`` needs; none for
    anything else."""
    if path.is_symlink() or not path.is_file() or not path.stat().st_mode & stat.S_IXUSR:
        return []
    with path.open("rb") as f:
        if f.read(4) != b"\x7fELF":
            return []
        try:
            sections = [s for s in ELFFile(f).iter_sections()
                        if isinstance(s, GNUVerNeedSection)]
            return [v.name for s in sections for _, aux in s.iter_versions() for v in aux]
        except ELFError:
            return []


def root_packages(kernel: DistroKernel) -> list[str]:
    """The packages a build root for ``kernel`` needs: what its headers and kbuild packages
    depend on (first alternatives, no linux-* packages), with the compiler of a foreign
    architecture's headers (gcc-N) replaced by its cross compiler (gcc-N-<triplet>)."""
    wanted = []
    triplet = kernel.arch.cross_compile.rstrip("-").replace("_", "-")
    for deb in kernel.debs:
        control = _control(deb)
        if not control.get("Package", "").startswith(("linux-headers-", "linux-kbuild-")):
            continue
        for dep in filter(None, control.get("Depends", "").split(",")):
            name = dep.split("|")[0].split()[0].split(":")[0]
            if name.startswith("linux-"):
                continue
            if not kernel.arch.is_host() and re.fullmatch(r"gcc-\d+", name):
                name = f"{name}-{triplet}"
            wanted.append(name)
    return sorted(set(wanted))


def with_build_root(kernel: DistroKernel, cache_dir: Path, suite: str) -> DistroKernel:
    """``kernel`` as it is if this machine can build its modules, else with a build root of
    ``suite`` that can. Raises HarnessError if the root lacks the compiler after all."""
    gaps = host_gaps(kernel)
    if not gaps:
        return kernel
    root = buildroot.ensure(cache_dir, suite, root_packages(kernel))
    kernel = replace(kernel, build_root=replace(root, binds=(kernel.root.parent,)))
    compiler = kernel.compiler()
    if not root.has_program(compiler):
        raise HarnessError(f"the {suite} build root {root.tree} has no {compiler}, which "
                           f"{kernel.headers} needs ({'; '.join(gaps)} here)")
    return kernel


def _depends(cache_dir: Path, suite: str, package: str, debarch: str) -> list[str]:
    """The packages ``package`` depends on in ``suite`` (first alternative of each)."""
    state = provision.apt_state(cache_dir, suite, debarch)
    out = proc.run(["apt-cache", *provision.apt_options(state), "depends", package],
                   timeout=provision.APT_TIMEOUT, check=False)
    return [m[1] for m in re.finditer(r"^  \|?Depends: (\S+)$", out.stdout, re.MULTILINE)
            if not m[1].startswith("<")]


def debian_packages(cache_dir: Path, name: str, arch: Arch) -> tuple[list[str], list[str]]:
    """The image, headers and headers-common packages of Debian's ``name`` kernel for
    ``arch`` (meta packages resolved in its suite), and the kbuild package, whose host
    programs come from the machine's own architecture. Raises ConfigError naming the valid
    names."""
    kernel = DEBIAN_DISTROS.get(name)
    if kernel is None:
        offered = ", ".join(f"debian:{n}" for n in DEBIAN_DISTROS)
        raise ConfigError(f"unknown distro 'debian:{name}': use {offered}, or --distro-deb "
                          "FILE for packages kbtf cannot download")
    debarch = arch.debian_arch
    image_meta = kernel.image_meta.format(flavour=debarch)
    headers_meta = kernel.headers_meta.format(flavour=debarch)
    image = [d for d in _depends(cache_dir, kernel.suite, image_meta, debarch)
             if d.startswith("linux-image-")][:1]
    headers = [d for d in _depends(cache_dir, kernel.suite, headers_meta, debarch)
               if d.startswith("linux-headers-")][:1]
    if not image or not headers:
        archs = provision.suite_architectures(cache_dir, kernel.suite, debarch)
        if archs and debarch not in archs:
            raise ConfigError(f"Debian {kernel.suite} has no {debarch} packages (its Release "
                              f"file offers {' '.join(archs)}): use another distro or arch")
        raise ConfigError(f"Debian {kernel.suite} ({debarch}): {image_meta} or {headers_meta} "
                          "names no kernel package now")
    extra = _depends(cache_dir, kernel.suite, headers[0], debarch)
    common = [d for d in extra if d.startswith("linux-headers-")]
    kbuild = [d for d in extra if d.startswith("linux-kbuild-")]
    return [image[0], headers[0], *common], kbuild


@dataclass(frozen=True)
class DistroPackages:
    """What the fetch stage downloads for a Debian kernel of the plan."""

    suite: str
    packages: tuple[str, ...]  # image, headers, headers-common (the kernel's architecture)
    kbuild: tuple[str, ...]  # linux-kbuild (the machine's architecture)


def debian_kernel(cache_dir: Path, name: str, arch_name: str = "x86_64") -> DistroKernel:
    """Debian's ``name`` kernel (DEBIAN_DISTROS) for ``arch_name`` as the plan knows it:
    its packages and release from apt metadata (kbtf's private apt configuration), and
    where ``fetch_kernel`` unpacks it. Downloads no package. Raises ConfigError."""
    if arch_name not in DISTRO_ARCHES:
        raise ConfigError(f"distro kernels of {arch_name} are not supported: use "
                          + " or ".join(DISTRO_ARCHES))
    arch = get_arch(arch_name)
    suite = DEBIAN_DISTROS[name].suite if name in DEBIAN_DISTROS else name
    packages, kbuild = debian_packages(cache_dir, name, arch)
    if any(provision.package_version(cache_dir, suite, k) is None for k in kbuild):
        # The host architecture's lists predate the foreign ones (kept a day): new kbuild.
        provision.apt_state(cache_dir, suite, max_age=0)
    versions = [provision.package_version(cache_dir, suite, p, arch.debian_arch) or ""
                for p in packages]
    key = hashlib.sha256(repr((packages, kbuild, versions, UNPACK_RECIPE)).encode()
                         ).hexdigest()[:12]
    foreign = "" if arch.is_host() else f"-{arch.debian_arch}"
    dest = cache_dir / "distro" / f"debian-{name}{foreign}-{key}"
    release = packages[0].removeprefix("linux-image-").removesuffix("-unsigned")
    spec = f"debian:{name}" + ("" if arch_name == "x86_64" else f":{arch_name}")
    return DistroKernel(f"debian-{name}-{release}", release, dest / "root", (), spec,
                        arch_name, fetch_from=DistroPackages(suite, tuple(packages),
                                                             tuple(kbuild)))


def fetch_kernel(kernel: DistroKernel, cache_dir: Path, say: Callable[[str], None]
                 ) -> DistroKernel:
    """``kernel`` on disk: a Debian kernel of the plan downloaded and unpacked into the
    cache once, with the build root its modules need (with_build_root); a local one
    (--distro-deb, unpacked when resolved) as it is. Raises ConfigError (the packages hold
    another release than their names said), CommandError naming the log."""
    deb = kernel.fetch_from
    if deb is None:
        return kernel
    dest = kernel.root.parent
    debarch = kernel.arch.debian_arch

    def fill(tmp: Path) -> None:
        say(f"kbtf: fetching Debian {deb.suite}'s {' '.join(deb.packages)} into {dest}")
        log = tmp / "fetch.log"
        debs = provision.download(cache_dir, deb.suite, deb.packages, tmp / "debs", log, debarch)
        debs += provision.download(cache_dir, deb.suite, deb.kbuild, tmp / "debs", log)
        _unpack(sorted(set(debs)), tmp / "root", dest / "root", log)

    cacheentry.populate(dest, (dest / "root" / ".complete").exists, fill, "fetch.log")
    found = _describe(dest, "debian")
    if found.release != kernel.release:
        raise ConfigError(f"{dest}: the packages hold kernel {found.release}, their names "
                          f"said {kernel.release}: remove {dest} and rerun")
    return with_build_root(replace(kernel, debs=found.debs), cache_dir, deb.suite)


def local_kernels(cache_dir: Path, debs: list[Path]) -> list[DistroKernel]:
    """The kernels in local .deb files (--distro-deb), grouped by release: each image
    package with its headers, and the -common and kbuild packages those headers depend on.
    Unpacked into the cache once per set of files. Raises ConfigError on a file that is no
    kernel package, or a release without both its image and headers."""
    infos = _deb_infos(debs)
    kernels = []
    for package, (deb, _, debarch) in sorted(infos.items()):
        if not package.startswith("linux-image-"):
            continue
        release = package.removeprefix("linux-image-").removesuffix("-unsigned")
        headers = infos.get(f"linux-headers-{release}")
        if headers is None:
            raise ConfigError(f"--distro-deb: {package} without linux-headers-{release}: "
                              "pass its headers package too")
        wanted = re.findall(r"(linux-(?:headers|kbuild)-[^\s,(|]+)", headers[1])
        group = [deb, headers[0], *(infos[w][0] for w in wanted if w in infos)]
        digest = hashlib.sha256(str(UNPACK_RECIPE).encode())
        for path in group:
            digest.update(path.read_bytes())
        dest = cache_dir / "distro" / f"deb-{release}-{digest.hexdigest()[:12]}"

        def fill(tmp: Path, group: list[Path] = group, dest: Path = dest) -> None:
            (tmp / "debs").mkdir()
            copies = []
            for path in group:
                shutil.copy(path, tmp / "debs" / path.name)
                copies.append(tmp / "debs" / path.name)
            _unpack(copies, tmp / "root", dest / "root", tmp / "fetch.log")

        cacheentry.populate(dest, (dest / "root" / ".complete").exists, fill, "fetch.log")
        arch_names = [a.name for a in ARCHES.values() if a.debian_arch == debarch]
        if not arch_names or arch_names[0] not in DISTRO_ARCHES:
            raise ConfigError(f"--distro-deb {deb}: kernels of architecture {debarch} are not "
                              "supported: use " + " or ".join(DISTRO_ARCHES))
        kernel = replace(_describe(dest, "deb"), arch_name=arch_names[0])
        gaps = host_gaps(kernel)
        if gaps:
            raise ConfigError(f"--distro-deb {kernel.release}: {'; '.join(gaps)}: run kbtf on "
                              "the release these packages are built for, or install what "
                              "is missing")
        kernels.append(kernel)
    if not kernels:
        raise ConfigError("--distro-deb: no linux-image package among the files")
    return kernels


def _deb_infos(debs: list[Path]) -> dict[str, tuple[Path, str, str]]:
    """Package name -> (file, Depends, Architecture) of each --distro-deb file.
    Raises ConfigError on a missing file or one that is no kernel package."""
    infos = {}
    for deb in debs:
        deb = deb.expanduser().resolve()
        if not deb.is_file():
            raise ConfigError(f"--distro-deb {deb}: no such file")
        control = _control(deb)
        package = control.get("Package", "")
        if not package.startswith(("linux-image-", "linux-headers-", "linux-kbuild-")):
            raise ConfigError(f"--distro-deb {deb}: not a linux-image, linux-headers or "
                              "linux-kbuild package")
        infos[package] = (deb, control.get("Depends", ""), control.get("Architecture", ""))
    return infos


def _control(deb: Path) -> dict[str, str]:
    """The Package, Depends and Architecture fields of ``deb``'s control file (those it
    has). Raises CommandError if dpkg-deb cannot read it."""
    out = proc.output(["dpkg-deb", "-f", deb, "Package", "Depends", "Architecture"],
                      timeout=60)
    return {m[1]: m[2].strip() for m in re.finditer(r"^(\S+): (.*)$", out, re.MULTILINE)}


def _unpack(debs: list[Path], root: Path, final_root: Path, log: Path) -> None:
    """dpkg-deb -x every package into ``root``, run depmod on its modules, then point the
    headers Makefiles' absolute /usr/src/ paths at ``final_root``'s (where ``root`` will be
    after the rename)."""
    root.mkdir(parents=True, exist_ok=True)
    for deb in debs:
        proc.run(["dpkg-deb", "-x", deb, root], logfile=log, timeout=UNPACK_TIMEOUT)
    if (root / "usr" / "lib" / "modules").is_dir() and not (root / "lib").exists():
        # Merged /usr (trixie on): the image ships usr/lib/modules; depmod -b and kbtf look
        # in lib/modules, as an installed system's /lib -> usr/lib link lets them.
        (root / "lib").symlink_to("usr/lib")
    for release in (root / "lib" / "modules").glob("*"):
        # Packages ship no modules.dep (depmod writes it when installing): kbtf's initramfs
        # needs it to load modules in order.
        proc.run(["depmod", "-b", root, release.name], logfile=log, timeout=UNPACK_TIMEOUT)
    for makefile in (root / "usr" / "src").glob("linux-headers-*/Makefile"):
        text = makefile.read_text()
        makefile.write_text(re.sub(r"(?m)^include /usr/src/",
                                   f"include {final_root}/usr/src/", text))
    (root / ".complete").write_text("".join(f"{d.name}\n" for d in debs))


def _describe(dest: Path, prefix: str) -> DistroKernel:
    """The DistroKernel unpacked at ``dest``. Raises ConfigError if it holds no image."""
    root = dest / "root"
    images = sorted((root / "boot").glob("vmlinuz-*"))
    if not images:
        raise ConfigError(f"{dest}: the packages hold no /boot/vmlinuz-*")
    release = images[0].name.removeprefix("vmlinuz-")
    debs = tuple(sorted((dest / "debs").glob("*.deb")))
    return DistroKernel(f"{prefix}-{release}", release, root, debs)


def resolve(specs: list[str], deb_files: list[str], cache_dir: Path) -> list[DistroKernel]:
    """Every distro kernel of a run: --distro SPECs ('debian:NAME', planned from apt
    metadata: ``fetch_kernel`` brings them) and --distro-deb files (local: unpacked here).
    Raises ConfigError (one line naming the fix), CommandError."""
    kernels = []
    for spec in dict.fromkeys(specs):
        if not spec.startswith("debian:"):
            raise ConfigError(f"unknown distro '{spec}': use debian:NAME[:ARCH] ("
                              + ", ".join(DEBIAN_DISTROS) + ") or --distro-deb FILE")
        name, _, arch_name = spec.removeprefix("debian:").partition(":")
        kernels.append(debian_kernel(cache_dir, name, arch_name or "x86_64"))
    if deb_files:
        kernels += local_kernels(cache_dir, [Path(f) for f in deb_files])
    return kernels
