"""One tree of harness errors. Raised from fixtures they become pytest ERRORs."""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base of every error the harness raises on purpose.

    ``log`` names the file a user should read next, if there is one.
    """

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log

    def __str__(self) -> str:
        msg = super().__str__()
        return f"{msg} (log: {self.log})" if self.log else msg


class ConfigError(HarnessError):
    """Bad input or an environment that cannot work: the message names the fix."""


class ToolMissing(ConfigError):
    """A required host program is not installed."""


class BuildError(HarnessError):
    """A kernel or module build failed."""


class BootError(HarnessError):
    """The guest did not reach its first command."""


class GuestLost(HarnessError):
    """The guest died (panic, Oops, BUG, QEMU exit) while the harness used it."""


class GuestTimeout(HarnessError):
    """A guest command did not finish in time; the guest was killed."""
