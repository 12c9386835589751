"""./kbtf's installer in a bare debian:bookworm root (issue 32 item 24): mmdebstrap makes
the root (variant apt: no python3), this checkout is copied in, and ``./kbtf`` runs there
with KBTF_SETUP_DRY_RUN=1: it must install python3 first and then name every package, the
arch registry's cross compilers and QEMUs included. Needs root and Debian's archive.

    python -m bench.installer_check
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import REPO, proc, provision
from harness.arches import ARCHES

TIMEOUT = 1800
LOG = Path(tempfile.gettempdir()) / "kbtf-installer-check.log"


def main() -> int:
    """Run the check; print the apt-get line ./kbtf gave; 0 when it names every arch's
    packages."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True,
                           text=True).stdout.split()
    with tempfile.TemporaryDirectory(prefix="kbtf-installer-") as work:
        out = Path(work) / "apt-line.txt"
        hooks = [
            'mkdir -p "$1/kbtf"',
            f'tar -C {shlex.quote(str(REPO))} -cf - {" ".join(shlex.quote(f) for f in files)}'
            ' | tar -C "$1/kbtf" -xf -',
            'chroot "$1" sh -c "cd /kbtf && KBTF_SETUP_DRY_RUN=1 ./kbtf true" > '
            + shlex.quote(str(out)),
        ]
        proc.run(["mmdebstrap", "--variant=apt", f"--keyring={provision.KEYRING}",
                  *(f"--customize-hook={h}" for h in hooks), "bookworm",
                  Path(work) / "root", provision.MIRROR], timeout=TIMEOUT,
                 logfile=LOG)
        line = out.read_text().strip()
    print(line)
    wanted = {p for arch in ARCHES.values() for p in arch.host_packages()}
    lacking = sorted(wanted - set(line.split()))
    if lacking:
        print(f"missing from ./kbtf's install: {', '.join(lacking)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
