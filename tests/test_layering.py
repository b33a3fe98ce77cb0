"""Imports point down the pipeline: commands → features → ranking → retrieval → base modules, never up."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import esrank

PACKAGE = Path(esrank.__file__).resolve().parent

# Top-level name under esrank → layer (higher may import lower or equal, never higher).
LAYERS = {
    "": 0, "corpus": 0, "text": 0, "errors": 0, "progress": 0, "predictions": 0, "outputs": 0, "stages": 0,
    "retrieval": 1,
    "ranking": 2,
    "enrich": 3, "evaluation": 3, "cost": 3, "demo": 3, "baselines": 3, "vocabulary": 3, "serve": 3,
    "commands": 4,
}


def module_name(path: Path) -> str:
    parts = ["esrank", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    assert top in LAYERS, f"esrank.{top} has no layer in tests/test_layering.py: add it"
    return LAYERS[top]


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every esrank import in ``source`` (a module of ``package``), lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "esrank"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "esrank":
                continue
            if target == "esrank":  # `from esrank import x`: x may be a module (progress) or a name (__version__)
                found += [(node.lineno, f"esrank.{a.name}" if a.name.split(".")[0] in LAYERS else "esrank")
                          for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for line, target in imported(path.read_text(encoding="utf-8"), package):
            if layer(target) > layer(name):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {target}")
    return bad


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer(module_name(path))


def test_imports_point_down_the_pipeline() -> None:
    assert violations() == []


def test_the_check_sees_relative_absolute_and_lazy_imports() -> None:
    source = ("from ..corpus import Document\nfrom . import base\nfrom .. import progress, __version__\n"
              "import esrank.text\n\ndef f():\n    from ..ranking.pools import read_pools\n")
    assert [t for _, t in imported(source, "esrank.retrieval")] == [
        "esrank.corpus", "esrank.retrieval", "esrank.progress", "esrank", "esrank.text", "esrank.ranking.pools"]
    assert layer("esrank.corpus") < layer("esrank.retrieval.elastic") < layer("esrank.ranking.pools") \
        < layer("esrank.enrich.job") < layer("esrank.commands")


def test_package_imports_stay_light() -> None:
    """``import esrank`` and the subpackages' re-exports import no torch (the CLI starts fast)."""
    code = ("import sys, esrank, esrank.ranking, esrank.evaluation, esrank.enrich, esrank.retrieval, esrank.commands\n"
            "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
            "assert not heavy, heavy\n"
            "assert esrank.ranking.Ranker.__module__ == 'esrank.ranking.ranker'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
