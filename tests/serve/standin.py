"""Stand-ins for the cluster plugins' HTTP side: they build the request a connector sends (with the plugin's
template substitution), send it, and map the answer the way the plugin does. Written from the plugins' sources:

* ml-commons: MLInferenceIngestProcessor / ModelExecutor.toString (a string field goes in as it is),
  StringUtils.parseParameters + processTextDoc (``${parameters.x.toString()}`` = Gson's JSON escaping without
  the quotes; Gson also escapes < > & = '), the connector's ``${credential.x}`` / ``${parameters.x}``; the answer
  (no post-process function) is the tensor ``response`` whose dataAsMap is the JSON answer; output_map values are
  JSON paths into it.
* Elasticsearch custom service: ``${input}`` = the JSON array of the input strings, ``${name}`` from
  secret_parameters; SparseEmbeddingResponseParser reads token_path / weight_path as lists of lists.
"""
from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Any

_GSON_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "=": "\\u003d", "'": "\\u0027"}


def gson_escape(value: str) -> str:
    """processTextDoc: gson.toJson(value) without the surrounding quotes."""
    s = json.dumps(value, ensure_ascii=False)[1:-1]
    return "".join(_GSON_HTML.get(c, c) for c in s)


def substitute(template: str, values: dict[str, str], prefix: str) -> str:
    """StringSubstitutor: ${prefix.name} → values[name]; unknown names are left as they are."""
    return re.sub(r"\$\{" + re.escape(prefix) + r"([^}]+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def json_path(data: Any, path: str) -> Any:
    """The small JSONPath both plugins use here: $.a.b[0].c and [*] (a list of the matches per [*])."""
    assert path.startswith("$")
    parts = re.findall(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+|\*)\]", path[1:])

    def walk(node: Any, i: int) -> Any:
        if i == len(parts):
            return node
        name, index = parts[i]
        if name:
            return walk(node[name], i + 1)
        if index == "*":
            return [walk(item, i + 1) for item in node]
        return walk(node[int(index)], i + 1)

    return walk(data, 0)


def send(url: str, headers: dict[str, str], body: str) -> tuple[int, Any]:
    """POST the body as the plugin would; (status, parsed answer)."""
    req = urllib.request.Request(url, data=body.encode("utf-8"), method="POST")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def set_dotted(doc: dict[str, Any], path: str, value: Any) -> None:
    """IngestDocument.setFieldValue with a dotted path."""
    *parents, last = path.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[last] = value


def opensearch_ingest(requests: list[dict[str, Any]], document: dict[str, Any]) -> dict[str, Any]:
    """Run the ml_inference processor of the printed pipeline on one document through the printed connector."""
    connector = next(r["body"] for r in requests if r["path"] == "/_plugins/_ml/connectors/_create")
    pipeline = next(r["body"] for r in requests if r["path"].startswith("/_ingest/pipeline/"))
    proc = pipeline["processors"][0]["ml_inference"]
    action = connector["actions"][0]
    assert action["action_type"] == "predict" and action["method"] == "POST"
    params = {model_field: document[doc_field] for model_field, doc_field in proc["input_map"][0].items()}
    params.update({f"{k}.toString()": gson_escape(v) for k, v in list(params.items()) if isinstance(v, str)})
    params = {**connector.get("parameters", {}), **params}
    credential = connector.get("credential", {})
    headers = {k: substitute(v, credential, "credential.") for k, v in action.get("headers", {}).items()}
    body = substitute(action["request_body"], params, "parameters.")
    assert "${" not in body, body
    json.loads(body)  # ml-commons sends it as JSON
    status, answer = send(substitute(action["url"], params, "parameters."), headers, body)
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {answer}")
    out = dict(document)
    for new_field, model_path in proc["output_map"][0].items():
        set_dotted(out, new_field, json_path(answer, model_path))
    return out


def mustache_triple(template: str, document: dict[str, Any]) -> str:
    """The set processor's {{{field}}} (no HTML escaping)."""
    return re.sub(r"\{\{\{([^}]+)\}\}\}", lambda m: str(document.get(m.group(1), "")), template)


def elasticsearch_infer(requests: list[dict[str, Any]], inputs: list[str]) -> list[dict[str, float]]:
    """The custom service: send the printed request for these inputs, parse phrase → score per input."""
    endpoint = next(r["body"] for r in requests if r["path"].startswith("/_inference/"))
    assert endpoint["service"] == "custom"
    ss = endpoint["service_settings"]
    secrets = ss.get("secret_parameters", {})
    headers = {k: substitute(v, secrets, "") for k, v in ss.get("headers", {}).items()}
    body = ss["request"].replace("${input}", json.dumps(inputs))
    body = substitute(body, secrets, "")
    assert "${" not in body, body
    status, answer = send(ss["url"], headers, body)
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {answer}")
    parser = ss["response"]["json_parser"]
    tokens, weights = json_path(answer, parser["token_path"]), json_path(answer, parser["weight_path"])
    assert len(tokens) == len(weights) == len(inputs)
    out = []
    for tok, wts in zip(tokens, weights):
        assert len(tok) == len(wts)
        out.append({str(t): float(w) for t, w in zip(tok, wts)})
    return out


def elasticsearch_ingest(requests: list[dict[str, Any]], document: dict[str, Any]) -> dict[str, Any]:
    """The printed pipeline on one document: set → inference (the stand-in above) → script → remove.

    The Painless script is mirrored here line by line (the test servers run no Painless).
    """
    pipeline = next(r["body"] for r in requests if r["path"].startswith("/_ingest/pipeline/"))
    doc = dict(document)
    for proc in pipeline["processors"]:
        (kind, conf), = proc.items()
        if kind == "set":
            doc[conf["field"]] = mustache_triple(conf["value"], doc)
        elif kind == "inference":
            io = conf["input_output"][0]
            doc[io["output_field"]] = elasticsearch_infer(requests, [doc[io["input_field"]]])[0]
        elif kind == "script":
            p = conf["params"]
            kp = [{"phrase": k, "score": v} for k, v in doc[p["tmp"]].items()]
            kp.sort(key=lambda x: -x["score"])
            doc[p["field"]] = {"keyphrases": kp, "model": p["model"], "version": p["version"]}
        elif kind == "remove":
            for f in conf["field"]:
                del doc[f]
        else:
            raise AssertionError(f"unexpected processor {kind}")
    return doc
