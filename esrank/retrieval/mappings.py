"""Index settings and mappings from the JSON files in ``mappings/`` (no mapping literals in Python)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MAIN = "documents"  # English analyzer with stemming
FALLBACK = "documents.standard"  # core 'standard' analyzer, for servers without analysis-common
EMBEDDED = "embedded"  # bm25s parameters and analysis


def mappings_dir() -> Path:
    """The directory of the mapping files: ``ESRANK_MAPPINGS_DIR``, the source checkout, or the install prefix."""
    override = os.environ.get("ESRANK_MAPPINGS_DIR")
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ConfigError(f"ESRANK_MAPPINGS_DIR={override} is not a directory")
        return path
    import esrank

    import site

    candidates = [Path(esrank.__file__).resolve().parent.parent / "mappings",  # source checkout / editable
                  Path(sys.prefix) / "share" / "esrank" / "mappings",  # wheel: data-files
                  Path(site.getuserbase()) / "share" / "esrank" / "mappings"]  # wheel, pip install --user
    for path in candidates:
        if (path / f"{MAIN}.json").is_file():
            return path
    raise ConfigError("cannot find the index mappings (looked in " + ", ".join(map(str, candidates))
                      + "); set ESRANK_MAPPINGS_DIR to the 'mappings' directory of the esrank sources")


def load_mapping(name: str) -> dict[str, Any]:
    """One mapping file as a dict, without its ``_comment`` keys."""
    path = mappings_dir() / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"mapping file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"invalid JSON: {e.msg}", source=str(path), line=e.lineno) from None
    return _strip_comments(data)


def _strip_comments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_comments(v) for k, v in value.items() if k != "_comment"}
    if isinstance(value, list):
        return [_strip_comments(v) for v in value]
    return value


def bm25_parameters() -> tuple[float, float]:
    """(k1, b) of the reference index mapping, shared by every backend."""
    sim = load_mapping(MAIN)["settings"]["index"]["similarity"]["esrank_bm25"]
    return float(sim["k1"]), float(sim["b"])
