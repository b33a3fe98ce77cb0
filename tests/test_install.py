"""The install a newcomer gets: README commands == CI, every module importable without extras, one-line errors."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Simulates an install without the optional extras: these modules cannot be imported.
BLOCKER = textwrap.dedent("""
    import sys
    class _Block:
        def __init__(self, names): self.names = set(names)
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, _Block(sys.argv.pop(1).split(",")))
""")


def readme_commands() -> list[str]:
    """The command lines of the README's first ```bash block (comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no ```bash block"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.strip().startswith("#")]


def test_ci_runs_exactly_the_readme_commands_in_order() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    assert commands[0].endswith("esrank demo") or "esrank demo" in commands[0]
    assert "pytest" in commands[1]
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    positions = []
    for c in commands:
        assert c in ci_lines, f".ci/run does not run the README command verbatim: {c}"
        positions.append(ci_lines.index(c))
    assert positions == sorted(positions), "the README commands run in another order in .ci/run"
    # each in its own fresh virtual environment
    assert sum("fresh_venv " in ln for ln in ci_lines) >= 2


def _all_modules() -> list[str]:
    import pkgutil

    import esrank

    names = ["esrank"]
    for m in pkgutil.walk_packages(esrank.__path__, "esrank."):
        names.append(m.name)
    return names


OPTIONAL = "opensearchpy"  # the one optional extra (opensearch); everything else is the base install


def test_every_module_imports_on_the_base_install() -> None:
    mods = _all_modules()
    assert len(mods) > 40  # the walk really found the package
    code = BLOCKER + "import importlib, json\nfor m in json.loads(sys.argv[1]):\n    importlib.import_module(m)\n"
    r = subprocess.run([sys.executable, "-c", code, OPTIONAL, json.dumps(mods)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_blocker_really_blocks() -> None:
    code = BLOCKER + "import opensearchpy\n"
    r = subprocess.run([sys.executable, "-c", code, OPTIONAL], capture_output=True, text=True)
    assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr


def _esrank_without(blocked: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = BLOCKER + "from esrank.commands import main\nsys.argv[0] = 'esrank'\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, blocked, *args], capture_output=True, text=True, cwd=cwd)


def test_missing_extra_is_one_line_with_the_install_command(tmp_path: Path) -> None:
    (tmp_path / "docs.jsonl").write_text(json.dumps({"id": "a", "title": "t", "text": "x y"}) + "\n")
    r = _esrank_without(OPTIONAL, "neighbours", "docs.jsonl", "--index", "kp", "--backend", "opensearch",
                        "--url", "http://127.0.0.1:9", "--out", "pools.jsonl", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("esrank: error: ") and 'pip install "esrank[opensearch]"' in lines[0]
    assert "Traceback" not in r.stderr


def test_missing_base_module_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "a", "title": "t", "text": "x y", "keyphrases": ["x"]}) + "\n")
    pred = tmp_path / "p.jsonl"
    pred.write_text(json.dumps({"id": "a", "keyphrases": ["x"]}) + "\n")
    r = _esrank_without("scipy", "evaluate", "--gold", str(gold), "--pred", str(pred), "--pred", str(pred),
                        cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("esrank: error:")]
    assert len(err) == 1 and "scipy" in err[0] and "reinstall esrank" in err[0], r.stderr


@pytest.mark.parametrize("path", ["docker/Dockerfile"])
def test_docker_installs_like_the_readme(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    # the same package set as the README's first command (base install; the image adds the opensearch client)
    assert re.search(r'pip install[^\n]*-e "?\.(\[opensearch\])?"?', text), text
    assert "USER " in text, "the image must not run as root"


def test_compose_file_is_valid() -> None:
    import yaml  # comes with transformers (a base dependency)
    spec = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text(encoding="utf-8"))
    services = spec["services"]
    assert {"elasticsearch", "opensearch", "esrank"} <= set(services)
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (ROOT / "docker" / src).resolve().exists(), f"{name} mounts {src}, which does not exist"
