"""`esrank demo` end to end on the sample corpus: four systems ranked from every candidate, the mix weight fitted on
the validation share and stored in the model card, the table printed with the defaults."""
from __future__ import annotations

import json
import os

from click.testing import CliRunner

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_demo_prints_the_four_systems_with_the_defaults(tmp_path):
    from esrank.commands import main
    from esrank.corpus import read_documents
    from esrank.ranking.pipeline import DEFAULT_K

    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--epochs", "1", "--batch-size", "16", "--threads", "2",
                                  "--no-carbon"])
    assert r.exit_code == 0, r.output
    for name in ("neighbour-vote", "zero-shot", "fine-tuned", "mix"):
        assert name in r.stdout
    assert f"k={DEFAULT_K}" in r.stderr and "mix weight" in r.stderr
    card = json.loads((out / "model" / "esrank_card.json").read_text())
    assert card["mix"]["k"] == DEFAULT_K and card["mix"]["validation_documents"] == 14
    assert card["data"]["documents"] == 58  # 72 indexed, 14 held out of fine-tuning for the fit
    test_ids = [d.id for d in read_documents(out / "test.jsonl")]
    lengths = {}
    for name in ("neighbour-vote", "mix"):
        preds = [json.loads(x) for x in (out / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        assert [p["id"] for p in preds] == test_ids
        lengths[name] = [len(p["keyphrases"]) for p in preds]
    assert lengths["mix"] == lengths["neighbour-vote"] and max(lengths["mix"]) > 10  # whole pools, no cut
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert evaluation["mix"]["weight"] == card["mix"]["weight"]
