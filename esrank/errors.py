"""Errors a user can cause, and how they are reported."""
from __future__ import annotations


class EsrankError(Exception):
    """A user-facing error: printed as one line ``esrank: error: <where>: <reason>``, exit code 2."""

    exit_code = 2

    def __init__(self, reason: str, *, source: str | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The error as a single line without the ``esrank: error:`` prefix."""
        where = ""
        if self.source is not None:
            where = f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "
        return f"{where}{self.reason}"


class InputError(EsrankError):
    """Bad input data (a file, a record, a field)."""


class ConfigError(EsrankError):
    """A bad option or setting."""


class BackendError(EsrankError):
    """A search server cannot be reached, answers with an error, or has the wrong version."""

    exit_code = 3


class MissingExtraError(EsrankError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(f"{purpose} needs the '{package}' package: pip install 'esrank[{extra}]'")
