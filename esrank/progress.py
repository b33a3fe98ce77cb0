"""Progress bars: shown on a terminal, silent with ``--quiet`` or when stderr is not a TTY."""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar of this process."""
    global _quiet
    _quiet = quiet


def enabled() -> bool:
    """Whether bars are drawn: not quiet, and stderr is a terminal (or ESRANK_PROGRESS=1)."""
    if _quiet:
        return False
    if os.environ.get("ESRANK_PROGRESS") == "1":
        return True
    return sys.stderr.isatty()


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str = "",
        unit: str = "doc", **kw: Any) -> "tqdm[T]":
    """A tqdm bar with esrank's defaults (rate in ``unit``/s, drawn on stderr)."""
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled(), dynamic_ncols=True,
                smoothing=0.1, file=sys.stderr, **kw)


def track(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "doc") -> Iterator[T]:
    """Iterate with a progress bar."""
    yield from bar(iterable, total=total, desc=desc, unit=unit)
