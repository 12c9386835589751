"""What a run tests, one shape for every kind: a matrix point (a kernel built from source,
its modules and guests), a distro kernel (its packages), a BPF CI job (its kernel, its
selftests, its runner). The plan, ``--point``, collection and the records iterate over one
list of units; only what differs in kind (how its kernel is made, its fixtures) looks at
which one it is."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from harness.arches import Arch
from harness.plan.kernelreq import KernelRequest


class Unit(Protocol):
    """One thing a run tests."""

    @property
    def id(self) -> str:
        """Names it in test ids, results and ``--point``: x86_64-debian6.12.117-gcc-pahole1.30."""
        ...

    @property
    def group(self) -> str:
        """Its kernel: the xdist group its tests share (one worker, one boot) and the unit of
        ``./kbtf plan``; units of one kernel share it."""
        ...

    @property
    def arch(self) -> Arch: ...

    @property
    def describe(self) -> str:
        """For people: "x86_64 debian6.12.117 gcc pahole1.30"."""
        ...

    @property
    def source_kernel(self) -> KernelRequest | None:
        """The kernel kbtf builds for it from source (None: a distro's, unpacked)."""
        ...

    def rerun(self, tests: Sequence[str] = ()) -> str:
        """The command line that runs just it again (just ``tests`` of it, where it can)."""
        ...

    def facts(self) -> dict[str, object]:
        """What summary.md and matrix.json say of it before any test ran."""
        ...
