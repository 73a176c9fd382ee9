"""Error kinds the CLI maps to one line and an exit code, and the engine to an item's fate."""

from __future__ import annotations


class MigratorError(Exception):
    """A known problem that ends a command; `hint` tells the user what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(MigratorError):
    """The configuration is invalid; nothing was started."""

    exit_code = 2


class UsageError(MigratorError):
    """The command line is invalid; nothing was started."""

    exit_code = 2


class LedgerLocked(MigratorError):
    """Another migrator process holds this ledger."""

    exit_code = 2


class ItemError(Exception):
    """This item cannot be moved as it is; retrying will not help until something changes."""


class TransientError(Exception):
    """A temporary failure (throttling, timeout, 5xx); the call may be retried after `retry_after`."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CursorExpired(Exception):
    """The source no longer accepts this delta cursor (Graph answers 410 Gone): list the container anew."""
