"""kbtf's errors, in three kinds that decide the verdict (suites/blame.py maps them once).

- ``HarnessError``: the harness or its environment failed (bad input, a missing tool, QEMU
  that will not start or vanished, a full disk, a harness command past its timeout). The
  suites report it as a pytest ERROR naming the log.
- ``ProductFailure``: the thing under test failed (the kernel crashed or warned, a kernel or
  module build failed or hung in the kernel's build rules or in pahole). The suites report
  it as a FAILED test naming the log, even when a fixture raised it.
- ``MissingPrerequisite``: what a test needs cannot be had here (a pahole too old for the
  tree's flags, hardware the guest lacks, signature enforcement). A SKIP with the reason.
- ``KernelFinding``: a known defect of the kernel's own rules that the test shows, quoted
  (e.g. kbuild adding duplicate types after pahole's dedup): a strict XFAIL; when the test
  no longer finds it, it passes, or fails on what it does find instead.
"""

from __future__ import annotations

from pathlib import Path


class KbtfError(Exception):
    """Base of every error kbtf raises on purpose. ``log`` names the file to read next."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} (log: {self.log})" if self.log else msg


class HarnessError(KbtfError):
    """Harness trouble: reported as an ERROR."""


class ConfigError(HarnessError):
    """Bad input or an environment that cannot work: the message names the fix."""


class ToolMissing(ConfigError):
    """A required host program is not installed."""


class CommandError(HarnessError):
    """A host command the harness ran exited non-zero."""


class CommandTimeout(CommandError):
    """A host command ran past its timeout; it was killed with its whole process group."""


class BootError(HarnessError):
    """The guest did not reach its first command (QEMU did not start, no shell in time)."""


class SilentStart(BootError):
    """The guest printed nothing (kernel console or serial) by the first-output deadline."""


class GuestLost(HarnessError):
    """QEMU went away under the harness with no kernel trouble on the console."""


class GuestTimeout(HarnessError):
    """A guest command did not finish in time; the guest was killed."""


class MissingPrerequisite(KbtfError):
    """What a test needs cannot be had here: the test is skipped with this reason."""


class ProductFailure(KbtfError):
    """The thing under test failed: reported as a FAILED test."""


class KernelTrouble(ProductFailure):
    """The guest kernel printed a panic, Oops, BUG or WARNING.

    ``fatal``: the guest is dead (or untrustworthy) and was killed.
    """

    def __init__(self, message: str, log: Path | None = None, fatal: bool = True) -> None:
        super().__init__(message, log)
        self.fatal = fatal


class BuildFailure(ProductFailure):
    """A kernel or module build failed or hung in the kernel's rules, the compiler or pahole."""


class ModuleLoadFailure(ProductFailure):
    """A module kbtf built was refused by the kernel it was built for."""


class KernelSilent(ProductFailure):
    """A kernel under test printed nothing under KVM while a kernel known to boot prints
    under the same KVM (guest/accel.py): the kernel's failure, not the machine's."""


class KernelFinding(KbtfError):
    """A known defect of the kernel (its build rules, its loader) that the test found,
    quoted: reported as a strict XFAIL (suites/blame.py)."""
