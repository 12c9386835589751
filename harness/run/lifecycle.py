"""A run's process: its log (kbtf-<worker>.log), progress lines that are logged too, and
signals (SIGTERM ends it like Ctrl-C; a worker dies with its controller)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from harness import proc

log = logging.getLogger("kbtf")

def logged(progress: Callable[[str], None]) -> Callable[[str], None]:
    """``progress``, each message also logged."""
    def say(msg: str) -> None:
        log.info("%s", msg)
        progress(msg)
    return say


def log_to(path: Path) -> None:
    """Send kbtf's log of this process to ``path`` (once per path)."""
    logger = logging.getLogger("kbtf")
    if any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def end_cleanly_on_sigterm(controller_pid: int | None) -> None:
    """SIGTERM ends the run like Ctrl-C: fixtures torn down (guests killed), temp build
    dirs removed, running builds killed with their process groups. A worker
    (``controller_pid``: its controller) also gets SIGTERM when the controller dies, even
    by SIGKILL (PR_SET_PDEATHSIG); if it already died before that was set, the worker's
    parent is no longer the controller and it ends itself."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not the main thread: the default still ends it
        signal.signal(signal.SIGTERM, interrupt)
    if controller_pid is not None:
        proc.die_with_parent(signal.SIGTERM)
        if controller_gone(controller_pid, os.getppid()):
            os.kill(os.getpid(), signal.SIGTERM)


def controller_gone(controller_pid: int, parent_pid: int) -> bool:
    """Whether a worker's controller died before the worker asked to die with it: its
    parent is no longer the controller (it was reparented). The controller may well be
    PID 1 itself (./kbtf as a container's entrypoint)."""
    return parent_pid != controller_pid
