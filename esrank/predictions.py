"""Ranked keyphrase predictions: the JSONL every ranker and generator writes and the evaluator reads.

One line per document: ``{"id": ..., "keyphrases": [{"phrase": ..., "score": ..., "category": ...}, ...]}``,
best first. When reading, items may also be plain strings.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import InputError


@dataclass
class ScoredPhrase:
    """One predicted keyphrase with its score and (optional) PRMU category."""

    phrase: str
    score: float | None = None
    category: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (fields that are unset are left out)."""
        d: dict[str, Any] = {"phrase": self.phrase}
        if self.score is not None:
            d["score"] = round(float(self.score), 6)
        if self.category is not None:
            d["category"] = self.category
        return d


@dataclass
class Prediction:
    """The ranked keyphrases predicted for one document."""

    id: str
    keyphrases: list[ScoredPhrase] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def phrases(self) -> list[str]:
        """The phrases alone, best first."""
        return [k.phrase for k in self.keyphrases]

    def to_json(self) -> dict[str, Any]:
        """JSON form of the line."""
        return {"id": self.id, "keyphrases": [k.to_json() for k in self.keyphrases], **self.meta}


def _item(value: Any) -> ScoredPhrase:
    if isinstance(value, str):
        return ScoredPhrase(value)
    if isinstance(value, dict) and isinstance(value.get("phrase"), str):
        score = value.get("score")
        if score is not None and not isinstance(score, (int, float)):
            raise ValueError("'score' must be a number")
        return ScoredPhrase(value["phrase"], score, value.get("category"))
    raise ValueError("each keyphrase must be a string or an object with a 'phrase' string")


def json_lines(path: str | Path, what: str = "line") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-empty JSONL line that has an 'id'; else ``InputError`` at FILE:LINE."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", source=str(path))
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"invalid UTF-8 at byte {e.start}", source=str(path), line=lineno) from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"malformed JSON: {e.msg}", source=str(path), line=lineno) from None
            if not isinstance(rec, dict) or "id" not in rec:
                raise InputError(f"a {what} needs an 'id'", source=str(path), line=lineno)
            yield lineno, rec


def read_predictions(path: str | Path) -> Iterator[Prediction]:
    """Stream a predictions file; a bad line raises ``InputError`` naming the file and line."""
    for lineno, rec in json_lines(path, "prediction line"):
        kps = rec.get("keyphrases", rec.get("keywords"))
        if not isinstance(kps, list):
            raise InputError("'keyphrases' must be a list", source=str(path), line=lineno)
        try:
            items = [_item(k) for k in kps]
        except ValueError as e:
            raise InputError(str(e), source=str(path), line=lineno) from None
        meta = {k: v for k, v in rec.items() if k not in ("id", "keyphrases", "keywords")}
        yield Prediction(str(rec["id"]), items, meta)


class PredictionWriter:
    """Writes predictions as JSONL, one document per line; a file is renamed into place only when the run succeeds."""

    def __init__(self, path: str | Path) -> None:
        from .outputs import AtomicOutput

        self.path = Path(path)
        self.count = 0
        self._out = AtomicOutput(path)
        self._fh: Any = self._out.fh

    def write(self, prediction: Prediction) -> None:
        """Append one document's prediction."""
        self._fh.write(json.dumps(prediction.to_json(), ensure_ascii=False) + "\n")
        self.count += 1

    def write_all(self, predictions: Iterable[Prediction]) -> int:
        """Append many; returns how many were written."""
        for p in predictions:
            self.write(p)
        return self.count

    def close(self) -> None:
        """Finish the output: the file replaces any previous one (stdout is only flushed)."""
        self._out.commit()

    def discard(self) -> None:
        """Abandon the output: a previous file of the same name is left untouched."""
        self._out.discard()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()
