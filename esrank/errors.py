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
        self.package, self.extra = package, extra
        super().__init__(f"{purpose} needs the '{extra}' extra ({package}): pip install \"esrank[{extra}]\"")


# top-level module → (distribution, extra that brings it); extra None = part of the base install
_MODULE_SOURCES: dict[str, tuple[str, str | None]] = {
    "opensearchpy": ("opensearch-py", "opensearch"),
    "pyarrow": ("pyarrow", "parquet"),
    "codecarbon": ("codecarbon", None),
    "datasets": ("datasets", None),
    "accelerate": ("accelerate", None),
    "sentence_transformers": ("sentence-transformers", None),
    "transformers": ("transformers", None),
    "torch": ("torch", None),
    "bm25s": ("bm25s", None),
    "Stemmer": ("PyStemmer", None),
    "nltk": ("nltk", None),
    "scipy": ("scipy", None),
    "matplotlib": ("matplotlib", None),
    "elasticsearch": ("elasticsearch", None),
}


def missing_module_error(e: ModuleNotFoundError) -> EsrankError:
    """A one-line error for a module that is not installed: which extra brings it, or how to repair the install."""
    top = (e.name or "").split(".")[0]
    dist, extra = _MODULE_SOURCES.get(top, (top, None))
    if extra is not None:
        return MissingExtraError(dist, extra, "this command")
    if top in _MODULE_SOURCES:
        return EsrankError(f"the package '{dist}' is missing from this environment although esrank needs it: "
                           "reinstall esrank (pip install esrank, or pip install -e . in a checkout)")
    return EsrankError(f"a Python module is missing: {e.name} ({e})")
