"""The kheaders flow of a point, after the seed's selftest: the running kernel's archive
copied out of its guest and extracted on the host, then modules/kbtf_kheaders built against
it with the build tree's scaffold (builds/kheaders.py). Each step says whether it worked and
why not, so the suite can fail the right test (the product's fault) with the reason."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness import cacheentry
from harness.builds import cacheremote, kheaders
from harness.builds.kbuild import KernelBuild
from harness.builds.modbuild import MODULES_DIR, content_key, source_digest
from harness.errors import CommandError, HarnessError
from harness.guest.session import GuestSession
from harness.plan.pahole import Pahole

MOD = "kbtf_kheaders"


@dataclass(frozen=True)
class Step:
    """One step of the kheaders flow: whether it worked, why not, where its output is."""

    ok: bool
    error: str = ""
    path: Path | None = None  # extracted headers, or the built module's dir
    archive_sha256: str = ""  # of the archive the headers were extracted from


def extract(guest: GuestSession, kernel: KernelBuild) -> Step:
    """The running kernel's archive out of ``guest``, extracted on the host beside the
    guest's logs (``<guest>.kheaders/headers``): the build tree's copy when the guest's
    sha256 of its archive says they are the same bytes (4 MB over the 9p share is 1-2 s
    under TCG), else the guest's, copied out."""
    archive = guest.out_dir / "kheaders.tar.xz"
    built = kernel.dir / kheaders.BUILT_ARCHIVE
    digest = cacheentry.file_sha256(built) if built.is_file() else ""
    summed = guest.run("sha256sum", kheaders.ARCHIVE) if digest else None
    if summed and summed.ok and summed.stdout.split()[:1] == [digest]:
        shutil.copyfile(built, archive)
    elif (copied := guest.run(kheaders.copy_out_command(guest.path(archive)),
                              timeout=300)).ok:
        digest = cacheentry.file_sha256(archive)
    else:
        return Step(False, f"cannot copy {kheaders.ARCHIVE} out of the guest: "
                    f"{copied.stderr.strip()}")
    headers = guest.out_dir.parent / f"{guest.name}.kheaders" / "headers"
    try:
        kheaders.extract(archive, headers)
    except CommandError as exc:
        return Step(False, f"cannot extract {kheaders.ARCHIVE}: {exc}")
    return Step(True, path=headers, archive_sha256=digest)


def build_module(extracted: Step, kernel: KernelBuild, pahole: Pahole, cache_dir: Path) -> Step:
    """modules/kbtf_kheaders built against the ``extracted`` headers and ``kernel``'s
    scaffold with ``pahole``; make's output in ``<guest>.kheaders/build.log``. The build is
    kept in the cache by content (the archive's bytes, the scaffold, the module's files,
    pahole's content, the kernel): the same inputs again copy it instead of running make.

    Raises HarnessError if the scaffold holds headers (the build would not use the
    archive's alone).
    """
    headers = extracted.path
    if not extracted.ok or headers is None or not extracted.archive_sha256:
        return extracted
    scaffold = kheaders.scaffold(kernel, cache_dir)
    if stray := kheaders.stray_headers(scaffold, kernel.arch.kernel_arch):
        raise HarnessError(f"scaffold {scaffold} holds headers {stray[:5]}: the build would "
                           "not use the archive's alone")
    module = headers.parent / MOD
    log = headers.parent / "build.log"
    key = content_key({"archive": extracted.archive_sha256,
                       "scaffold": scaffold.name,
                       "source": source_digest(MODULES_DIR / MOD), "pahole": pahole.digest,
                       "kernel": kernel.dir.name})
    final = cache_dir / "modules" / f"{MOD}-kheaders-{key}"
    try:
        built_in = cacheremote.kept_or_made(final, module, lambda: kheaders.build(
            scaffold, headers, MODULES_DIR / MOD, module, kernel, pahole, log))
    except CommandError as exc:
        return Step(False, f"{exc}", module)
    if built_in is not None:
        log.write_text(f"kbtf: the build of {MOD} against this archive was kept in {final} "
                       "and reused (same archive, scaffold, module files and pahole)\n")
    return Step(True, path=module)
