"""The live guests of one process, one per kernel: booted on demand, booted again after a
loss (counted per point), shut down per point; a kernel's trouble at boot (a splat, silence
under a KVM that runs Linux) is its failure for every test that needs it, never a loss."""

from __future__ import annotations

import logging
from collections.abc import Callable

from harness.errors import HarnessError, KernelSilent, KernelTrouble, SilentStart
from harness.guest.session import GuestSession

log = logging.getLogger("kbtf")


class GuestPool:
    """The live guests of one process, one per kernel, rebooted after a loss.

    A guest that died (crash, timeout, QEMU gone) is booted again for the next test that
    needs it, under a new boot number so the earlier boot's logs stay. Losses are counted
    per point (the one whose test was using the guest), and a crash the kernel printed is
    no loss (its test FAILED; the next boot is the product's chance again): a second
    harness loss in a row (no test of that point passed in between) ends that point, whose
    later requests raise HarnessError naming the last boot's log; other points sharing the
    kernel go on.
    """

    def __init__(self) -> None:
        self._slots: dict[str, GuestSession] = {}
        self._losses: dict[tuple[str, str], int] = {}  # (point, slot key) -> losses in a row
        self._owners: dict[str, str] = {}  # slot key -> the point whose test used it last
        self._counted: set[int] = set()  # sessions whose loss is counted (id())

    def get(self, key: str, make: Callable[[int], GuestSession], owner: str = "") -> GuestSession:
        """The live guest for ``key`` (used by point ``owner``), booting ``make(boot_number)``
        if there is none.

        Raises HarnessError after two harness losses in a row for ``owner``; start()'s
        errors when a boot fails.
        """
        session = self._slots.get(key)
        if session is not None and session.boot_trouble is not None:
            raise session.boot_trouble  # its kernel's, at boot: every test that needs it fails
        if session is not None and session.alive:
            self._owners[key] = owner
            return session
        boot = 1
        if session is not None:
            self._count_loss(key, session)
            if self._losses.get((owner, key), 0) >= 2:
                raise HarnessError(f"guest {session.name} was lost twice in a row: no more "
                                   "boots for this point", log=session.console_log)
            boot = session.boot + 1
            log.info("guest %s was lost: booting it again (boot %d)", session.name, boot)
        self._owners[key] = owner
        return self._start(key, make(boot))

    def _count_loss(self, key: str, session: GuestSession) -> None:
        """Count ``session``'s death once, against the point that was using it, unless the
        kernel crashed (a product failure, reported by its test)."""
        if id(session) in self._counted or session.crashed:
            return
        self._counted.add(id(session))
        loser = (self._owners.get(key, ""), key)
        self._losses[loser] = self._losses.get(loser, 0) + 1

    def _start(self, key: str, session: GuestSession) -> GuestSession:
        """Boot ``session`` in slot ``key`` (a boot that fails stays there, dead: the next
        request counts it as a loss, or raises its kernel's trouble again). Returns it.
        Raises start()'s errors; a KVM boot that stays silent is its kernel's failure
        (the run uses KVM only where a kernel known to boot printed under it: accel.py)."""
        self._slots[key] = session
        try:
            session.start()
        except SilentStart as exc:
            if not session.spec.kvm:
                raise
            silent = KernelSilent(f"{exc}, while KVM runs Linux guests on this host "
                                  "(Debian's kernel printed under it): this kernel's failure",
                                  log=exc.log)
            session.crashed = True  # the product's: never counted as a harness loss
            session.boot_trouble = silent
            raise silent from None
        return session

    def passed(self, session: GuestSession) -> None:
        """A test passed on ``session``: its point's losses are no longer in a row."""
        for key, live in self._slots.items():
            if live is session:
                self._losses[(self._owners.get(key, ""), key)] = 0

    def close_owned(self, owner: str) -> list[str]:
        """Shut point ``owner``'s guests down; return their names. Raises the first
        KernelTrouble found at shutdown (the point's product, not the last test's)."""
        keys = [k for k, o in self._owners.items() if o == owner and k in self._slots]
        closed = [self._slots[k].name for k in keys]
        self._close([self._slots.pop(k) for k in keys])
        return closed

    def close_all(self) -> None:
        """Shut every guest down. Raises the first KernelTrouble found at shutdown."""
        self._close(list(self._slots.values()))

    @staticmethod
    def _close(sessions: list[GuestSession]) -> None:
        first: KernelTrouble | None = None
        for session in sessions:
            try:
                session.close()
            except KernelTrouble as trouble:
                first = first or trouble
        if first is not None:
            raise first
