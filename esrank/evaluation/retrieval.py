"""Ad-hoc retrieval evaluation on a live index: TREC topics and qrels, BM25 runs over chosen fields,
MAP, nDCG@10 and recall@100 per topic, and paired significance tests between runs.

Used to measure what enrichment (``esrank enrich``) buys: BM25 over the original text fields against
BM25 over the same fields plus the enriched keyphrases. Metrics follow trec_eval: AP and recall over the
retrieved depth with every judged relevant document (rel > 0) in the denominator, nDCG with gain = rel
and a log2(rank + 1) discount, the ideal ranking taken from the qrels.
"""
from __future__ import annotations

import math
import re
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InputError
from ..retrieval.cluster import Cluster
from ..retrieval.factory import BackendOptions, connect
from ..retrieval.search_templates import FORMS, QueryForm
from .prmu import EvalResult, Significance, SystemScores, paired_test

METRICS = ("map", "ndcg@10", "recall@100")


def read_topics(path: str | Path) -> dict[str, str]:
    """Topics in file order: ``qid<TAB>query`` lines, or TREC ``<top>`` blocks (``<num>``, ``<title>``)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    topics: dict[str, str] = {}
    if "<top>" in text:
        for block in re.findall(r"<top>(.*?)</top>", text, flags=re.S | re.I):
            num = re.search(r"<num>\s*(?:Number:)?\s*(\S+)", block, flags=re.I)
            title = re.search(r"<title>\s*(?:Topic:)?\s*(.*?)\s*(?=<|$)", block, flags=re.S | re.I)
            if not num or not title or not title.group(1).strip():
                raise InputError("a <top> block needs <num> and <title>", source=str(path))
            topics[num.group(1)] = " ".join(title.group(1).split())
        return topics
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        qid, sep, query = line.partition("\t")
        if not sep or not qid.strip() or not query.strip():
            raise InputError("expected 'qid<TAB>query'", source=str(path), line=lineno)
        if qid.strip() in topics:
            raise InputError(f"topic {qid.strip()} appears twice", source=str(path), line=lineno)
        topics[qid.strip()] = query.strip()
    return topics


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels (``qid iter docid rel``): qid → {docid: relevance}."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise InputError("expected 'qid iter docid rel'", source=str(path), line=lineno)
            try:
                rel = int(parts[3])
            except ValueError:
                raise InputError(f"relevance {parts[3]!r} is not an integer", source=str(path), line=lineno) from None
            qrels.setdefault(parts[0], {})[parts[2]] = rel
    return qrels


def average_precision(ranked: Sequence[str], rels: dict[str, int]) -> float:
    """AP of a ranked list: mean precision at each relevant document, over all relevant documents."""
    n_rel = sum(1 for r in rels.values() if r > 0)
    if n_rel == 0:
        return 0.0
    hits, total = 0, 0.0
    for i, doc in enumerate(ranked, 1):
        if rels.get(doc, 0) > 0:
            hits += 1
            total += hits / i
    return total / n_rel


def ndcg(ranked: Sequence[str], rels: dict[str, int], k: int = 10) -> float:
    """nDCG@k with gain = relevance and discount log2(rank + 1)."""
    dcg = sum(max(rels.get(d, 0), 0) / math.log2(i + 1) for i, d in enumerate(ranked[:k], 1))
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 1) for i, r in enumerate(ideal, 1))
    return dcg / idcg if idcg > 0 else 0.0


def recall(ranked: Sequence[str], rels: dict[str, int], k: int = 100) -> float:
    """Share of the relevant documents found in the first k."""
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def score_run(run: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per-topic MAP, nDCG@10 and recall@100 of a run (topics without relevant documents left out)."""
    out: dict[str, dict[str, float]] = {}
    for qid, rels in qrels.items():
        if not any(r > 0 for r in rels.values()):
            continue
        ranked = run.get(qid, [])
        out[qid] = {"map": average_precision(ranked, rels), "ndcg@10": ndcg(ranked, rels, 10),
                    "recall@100": recall(ranked, rels, 100)}
    return out


def bm25_run(cluster: Cluster, index: str, topics: dict[str, str], fields: Sequence[str],
             depth: int = 100) -> dict[str, list[str]]:
    """The ranked document ids of each topic: one BM25 ``multi_match`` (summed over the fields) per topic."""
    form = QueryForm.load("bm25")
    return form_run(cluster, index, topics, lambda q: form.render(q, fields=fields), depth)


def form_run(cluster: Cluster, index: str, topics: dict[str, str], body: Callable[[str], dict[str, Any]],
             depth: int = 100) -> dict[str, list[str]]:
    """The ranked document ids of each topic, searched with the body ``body(query)``."""
    searches = [(index, {**body(query), "size": depth, "_source": False, "track_total_hits": False})
                for query in topics.values()]
    responses = cluster.msearch(searches, what=f"search '{index}'")
    run: dict[str, list[str]] = {}
    for qid, r in zip(topics, responses):
        if "error" in r:
            err = r["error"]
            reason = (err.get("root_cause") or [err])[0].get("reason", str(err)) if isinstance(err, dict) else err
            raise InputError(f"search for topic {qid} failed: {reason}")
        run[qid] = [h["_id"] for h in r["hits"]["hits"]]
    return run


@dataclass
class RetrievalResult:
    """Mean metrics of each run, per-topic values, and paired tests of each run against the first."""

    runs: dict[str, dict[str, dict[str, float]]]  # run name → topic → metric → value
    fields: dict[str, list[str]]
    tests: list[Significance] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def mean(self, run: str, metric: str) -> float:
        """Mean of a metric over the topics of a run."""
        values = [m[metric] for m in self.runs[run].values()]
        return sum(values) / len(values) if values else math.nan

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "runs": {name: {"fields": self.fields[name], "topics": len(per),
                            **{m: round(self.mean(name, m), 4) for m in METRICS}, "per_topic": per}
                     for name, per in self.runs.items()},
            "tests": [{"metric": t.metric, "a": t.a, "b": t.b, "n": t.n, "mean_a": round(t.mean_a, 4),
                       "mean_b": round(t.mean_b, 4), "p_randomization": t.p_randomization,
                       "p_ttest": t.p_ttest, "p_wilcoxon": t.p_wilcoxon} for t in self.tests],
            "warnings": self.warnings,
        }

    def table(self) -> str:
        """A Markdown table of the runs, then the paired tests († = p < 0.05, randomization)."""
        lines = ["| run | fields | topics | " + " | ".join(METRICS) + " |",
                 "|---|---|---:|" + "---:|" * len(METRICS)]
        for name, per in self.runs.items():
            marks = {t.metric: t.marker() for t in self.tests if t.b == name}
            cells = [f"{self.mean(name, m):.4f}{marks.get(m, '')}" for m in METRICS]
            lines.append(f"| {name} | {', '.join(self.fields[name])} | {len(per)} | " + " | ".join(cells) + " |")
        if self.tests:
            lines += ["", "| metric | runs | diff | p (randomization) | p (t-test) |", "|---|---|---:|---:|---:|"]
            for t in self.tests:
                lines.append(f"| {t.metric} | {t.b} vs {t.a} | {t.mean_b - t.mean_a:+.4f} | "
                             f"{t.p_randomization:.4f} | {t.p_ttest:.4f} |")
        return "\n".join(lines)


def compare(runs: dict[str, dict[str, dict[str, float]]], baseline: str, *, rounds: int = 10_000,
            seed: int = 13) -> list[Significance]:
    """Paired tests (randomization, t-test, Wilcoxon) of every run against the baseline, per metric."""
    systems = {name: SystemScores(name, dict(per)) for name, per in runs.items()}
    result = EvalResult(systems, {"all": sorted(runs[baseline])})
    return [paired_test(result, m, baseline, name, rounds=rounds, seed=seed)
            for name in runs if name != baseline for m in METRICS]


def evaluate_retrieval(options: BackendOptions, topics_path: str | Path, qrels_path: str | Path, *,
                       fields: Sequence[str] = ("title", "abstract"),
                       enrichment_fields: Sequence[str] | None = None, depth: int = 100,
                       runs_dir: str | Path | None = None, forms: Sequence[str] | None = None,
                       boost: float = 1.0) -> RetrievalResult:
    """Each query form (``mappings/search/``) on ``options.index``: BM25 over ``fields`` ('original'), plus,
    with ``enrichment_fields``, the keyphrase field ('enriched', weighted by ``boost``) and rank_feature clauses
    ('rank_feature', where the server has rank features); scored and compared with the first."""
    forms = list(forms) if forms else (list(FORMS) if enrichment_fields else ["bm25"])
    unknown = [f for f in forms if f not in FORMS]
    if unknown or "bm25" not in forms:
        raise InputError(f"query forms are a comma list of {', '.join(FORMS)} including bm25, not {','.join(forms)}")
    if not enrichment_fields and forms != ["bm25"]:
        raise InputError("the keyphrases and rank_feature query forms need the enrichment (--with-enrichment)")
    topics = read_topics(topics_path)
    qrels = read_qrels(qrels_path)
    warnings: list[str] = []
    unjudged = [q for q in topics if q not in qrels]
    if unjudged:
        warnings.append(f"{len(unjudged)} topics have no judgments and are left out: {', '.join(unjudged[:5])}")
    topics = {q: t for q, t in topics.items() if q in qrels}
    qrels = {q: r for q, r in qrels.items() if q in topics}
    with connect(options) as cluster:
        cluster.refresh(options.index)
        judged = sorted({d for rels in qrels.values() for d, r in rels.items() if r > 0})
        present = _ids_present(cluster, options.index, judged)
        if len(present) < len(judged):
            warnings.append(f"{len(judged) - len(present)} of {len(judged)} relevant documents are not in index "
                            f"'{options.index}' (they count as not found)")
        names = {"original": list(fields)}
        bodies: dict[str, Callable[[str], dict[str, Any]]] = {
            "original": partial(QueryForm.load("bm25").render, fields=fields)}
        if enrichment_fields:
            root = enrichment_fields[0].split(".")[0]
            if "keyphrases" in forms:
                names["enriched"] = list(fields) + [e if boost == 1 else f"{e}^{boost:g}" for e in enrichment_fields]
                bodies["enriched"] = partial(QueryForm.load("keyphrases").render, fields=fields,
                                             enrichment_fields=enrichment_fields, boost=boost)
            if "rank_feature" in forms:
                mapping = next(iter(cluster.get_mappings(options.index).values()), {})
                scores = mapping.get("properties", {}).get(root, {}).get("properties", {}).get("scores")
                if scores is None:
                    warnings.append(f"the rank_feature form is left out: '{options.index}' has no rank_features field "
                                    f"'{root}.scores' (the server lacks the mapper-extras module, or the index was "
                                    "enriched by an older esrank)")
                else:
                    names["rank_feature"] = list(fields) + [f"{root}.scores"]
                    bodies["rank_feature"] = partial(QueryForm.load("rank_feature").render, fields=fields,
                                                     field=root, boost=boost)
            # exists on the object would reach its rank_features sub-field, which refuses exists queries
            n = cluster.count(options.index, {"bool": {"should": [{"exists": {"field": f"{root}.model"}},
                                                                  {"exists": {"field": enrichment_fields[0]}}]}},
                              what="count enriched")
            if n == 0:
                warnings.append(f"no document of '{options.index}' has the field '{root}' (run esrank enrich first)")
        runs = {name: form_run(cluster, options.index, topics, bodies[name], depth) for name in names}
    if runs_dir is not None:
        write_runs(runs, runs_dir)
    scored = {name: score_run(run, qrels) for name, run in runs.items()}
    tests = compare(scored, "original") if len(scored) > 1 else []
    return RetrievalResult(scored, names, tests, warnings)


def _ids_present(cluster: Cluster, index: str, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    resp = cluster.search(index, {"query": {"ids": {"values": ids}}, "size": len(ids), "_source": False},
                          what="look up judged documents")
    return {h["_id"] for h in resp["hits"]["hits"]}


def write_runs(runs: dict[str, dict[str, list[str]]], out_dir: str | Path) -> list[Path]:
    """Each run in TREC run format (``qid Q0 docid rank score name``; score = depth - rank + 1)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, run in runs.items():
        path = out / f"{name}.run"
        with open(path, "w", encoding="utf-8") as fh:
            for qid, ranked in run.items():
                for rank, doc in enumerate(ranked, 1):
                    fh.write(f"{qid} Q0 {doc} {rank} {len(ranked) - rank + 1} {name}\n")
        paths.append(path)
    return paths
