"""Output files written safely: to a temporary file beside the target, renamed into place only on success.

A failed run therefore never truncates or half-writes the previous output, and ``check_paths`` refuses an
output that would overwrite one of the run's inputs before anything is opened. ``-`` means stdout.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

from .errors import ConfigError

STDIO = "-"


def _key(path: str | Path) -> tuple[str, Any]:
    """What identifies a file: (device, inode) when it exists, else its resolved path."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
        return ("inode", (st.st_dev, st.st_ino))
    except OSError:
        return ("path", str(p.resolve()))


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when two paths name the same file (links and relative spellings included); ``-`` is never a file."""
    if str(a) == STDIO or str(b) == STDIO:
        return False
    return _key(a) == _key(b) or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def check_paths(outputs: Mapping[str, str | Path | None], inputs: Mapping[str, str | Path | None]) -> None:
    """Refuse (``ConfigError``) an output that is one of the inputs or another output; ``None`` entries are unused.

    Keys name the options (``"--out"``, ``"--rejects"``, ``"DATA"``) for the error line.
    """
    outs = [(name, p) for name, p in outputs.items() if p is not None and str(p) != STDIO]
    ins = [(name, p) for name, p in inputs.items() if p is not None and str(p) != STDIO]
    for i, (oname, opath) in enumerate(outs):
        for iname, ipath in ins:
            if same_file(opath, ipath):
                raise ConfigError(f"{oname} is the same file as the input {iname}; writing it would destroy the "
                                  "input: choose another output path", source=str(opath))
        for oname2, opath2 in outs[i + 1:]:
            if same_file(opath, opath2):
                raise ConfigError(f"{oname} and {oname2} name the same file", source=str(opath))


class AtomicOutput:
    """A text output: ``-`` is stdout; a path is written to a temporary file and renamed into place by ``commit``.

    As a context manager it commits when the block succeeds and discards the temporary file when it raises.
    """

    def __init__(self, path: str | Path, *, encoding: str = "utf-8", binary: bool = False) -> None:
        self.path = str(path)
        self._tmp: str | None = None
        if self.path == STDIO:
            self.fh: IO[Any] = sys.stdout.buffer if binary else sys.stdout
            return
        target = Path(self.path)
        if target.is_dir():
            raise ConfigError("is a directory, expected a file", source=self.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
        self.fh = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding=encoding, newline="")

    @property
    def is_stdout(self) -> bool:
        """Whether this output is stdout."""
        return self._tmp is None and self.path == STDIO

    def write(self, text: Any) -> int:
        """Write text (or bytes for a binary output)."""
        return self.fh.write(text)

    def writelines(self, lines: Iterable[Any]) -> None:
        """Write several strings."""
        self.fh.writelines(lines)

    def flush(self) -> None:
        """Flush the buffer (the file stays temporary until ``commit``)."""
        self.fh.flush()

    def commit(self) -> None:
        """Close the temporary file and rename it onto the target (stdout is flushed)."""
        if self.path == STDIO:
            self.fh.flush()
            return
        if self._tmp is None:
            return
        tmp, self._tmp = self._tmp, None
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            mode = 0o666 & ~_umask()
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            _unlink(tmp)
            raise

    def discard(self) -> None:
        """Drop the temporary file; the previous target (if any) is left as it was."""
        if self._tmp is None:
            if self.path == STDIO:
                self.fh.flush()
            return
        tmp, self._tmp = self._tmp, None
        try:
            self.fh.close()
        finally:
            _unlink(tmp)

    def __enter__(self) -> "AtomicOutput":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    """Write a whole text file atomically (``-`` = stdout)."""
    with AtomicOutput(path) as out:
        out.write(text)
