"""Cache entries written once: built in a temp dir beside the entry, renamed into place
when complete, under a file lock shared by every process (xdist workers)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from harness.errors import HarnessError


def populate(final: Path, ready: Callable[[], bool], fill: Callable[[Path], None],
             log_name: str | None = None) -> None:
    """Make cache entry ``final`` unless ``ready()`` says it is complete.

    ``fill(tmp)`` writes the entry into a temp dir that is renamed to ``final`` on success;
    nothing half-written ever appears at ``final``. If ``fill`` raises a HarnessError, the
    temp dir's ``log_name`` file is kept as failed-<final.name>.log beside the entry and the
    error names it.
    """
    if ready():
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if ready():
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            fill(tmp)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        except HarnessError as exc:
            if log_name is not None:
                exc.log = final.parent / f"failed-{final.name}.log"
                if (tmp / log_name).exists():
                    shutil.copy(tmp / log_name, exc.log)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
