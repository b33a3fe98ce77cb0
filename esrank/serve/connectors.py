"""Ready-made connectors that make a cluster call ``esrank serve`` at ingest time, as the exact requests to send.

* OpenSearch 2.14+ (ml-commons): trusted-endpoint settings, an HTTP connector whose ``predict`` action posts one
  document to ``/v1/keyphrases``, a remote model on it, and an ingest pipeline whose ``ml_inference`` processor
  maps ``$.results[0].keyphrases`` (phrase, score, category), ``$.model`` and ``$.version`` into the esrank field.
* Elasticsearch 8.19+ (x-pack inference): a ``custom`` service ``sparse_embedding`` endpoint whose request is
  ``{"docs": ${input}}`` and whose response parser reads phrase → score, and an ingest pipeline (``set`` →
  ``inference`` → ``script`` → ``remove``) that writes the ranked phrases and scores into the esrank field.

The field layout is ``mappings/enrichment.json``'s: ``<field>.keyphrases[{phrase, score, category}]``,
``<field>.model``, ``<field>.version``.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError

FLAVORS = ("opensearch", "elasticsearch")
DEFAULT_NAME = "esrank-keyphrases"
CONNECTOR_ID = "<connector_id>"  # filled in by the user from the answer of the previous request
MODEL_ID = "<model_id>"

# Elasticsearch: the ingest script that turns the sparse phrase → score map into the enrichment field layout
_ES_SCRIPT = (
    "def kp = new ArrayList();"
    " for (def e : ctx[params.tmp].entrySet()) { kp.add(['phrase': e.getKey(), 'score': e.getValue()]); }"
    " kp.sort((a, b) -> Double.compare(((Number) b.score).doubleValue(), ((Number) a.score).doubleValue()));"
    " ctx[params.field] = ['keyphrases': kp, 'model': params.model, 'version': params.version];"
)


@dataclass(frozen=True)
class ClusterRequest:
    """One request to send to the cluster: method, path, JSON body and what it does."""

    method: str
    path: str
    body: dict[str, Any]
    note: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"method": self.method, "path": self.path, "body": self.body, "note": self.note}

    def console(self) -> str:
        """Kibana / OpenSearch Dashboards console form: a comment, the request line, the body."""
        return f"# {self.note}\n{self.method} {self.path}\n{json.dumps(self.body, indent=2, ensure_ascii=False)}\n"


@dataclass(frozen=True)
class ConnectorSettings:
    """Where the service is and how its answer is mapped: URL, names, document fields, enrichment field."""

    url: str
    name: str = DEFAULT_NAME
    field: str = "esrank"
    title_field: str = "title"
    text_field: str = "abstract"
    token: str | None = None
    model: str = "esrank serve"
    version: str = "unknown"

    def validate(self) -> None:
        """Raise ConfigError on a URL that is not http(s)://host[:port][/path] or an empty name."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--url must be the http(s) URL of `esrank serve`, not {self.url!r}")
        if parts.query or parts.fragment:
            raise ConfigError("--url takes no query string or fragment")
        for name, value in (("--name", self.name), ("--field", self.field), ("--title-field", self.title_field),
                            ("--text-field", self.text_field)):
            if not value or not re.fullmatch(r"[A-Za-z0-9_.@-]+", value):
                raise ConfigError(f"{name} must be a plain field or resource name, not {value!r}")

    @property
    def base(self) -> str:
        """The service URL without a trailing slash."""
        return self.url.rstrip("/")

    @property
    def endpoint(self) -> str:
        """The keyphrase endpoint."""
        return f"{self.base}/v1/keyphrases"


def _private_host(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".local") or host.endswith(".internal") or "." not in host:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def opensearch_requests(s: ConnectorSettings) -> list[ClusterRequest]:
    """The OpenSearch 2.14+ ml-commons requests: settings, connector, remote model, ingest pipeline."""
    s.validate()
    settings: dict[str, Any] = {"plugins.ml_commons.trusted_connector_endpoints_regex": [f"^{re.escape(s.base)}/.*$"]}
    if _private_host(s.url):
        settings["plugins.ml_commons.connector.private_ip_enabled"] = True
    headers = {"Content-Type": "application/json"}
    connector: dict[str, Any] = {
        "name": s.name, "description": "esrank keyphrase service (esrank serve)", "version": 1, "protocol": "http",
    }
    if s.token:
        connector["credential"] = {"esrank_token": s.token}
        headers["Authorization"] = "Bearer ${credential.esrank_token}"
    # ml_inference passes string fields as they are; .toString() makes ml-commons JSON-escape them
    connector["actions"] = [{
        "action_type": "predict", "method": "POST", "url": s.endpoint, "headers": headers,
        "request_body": '{ "docs": [ { "title": "${parameters.title.toString()}", '
                        '"text": "${parameters.text.toString()}" } ] }',
    }]
    pipeline = {
        "description": f"esrank keyphrases into '{s.field}' (esrank serve at {s.base})",
        "processors": [{"ml_inference": {
            "model_id": MODEL_ID,
            "input_map": [{"title": s.title_field, "text": s.text_field}],
            "output_map": [{f"{s.field}.keyphrases": "$.results[0].keyphrases", f"{s.field}.model": "$.model",
                            f"{s.field}.version": "$.version"}],
        }}],
    }
    return [
        ClusterRequest("PUT", "/_cluster/settings", {"persistent": settings},
                       "1. let ml-commons call esrank serve (merge the regex with any you already trust)"),
        ClusterRequest("POST", "/_plugins/_ml/connectors/_create", connector,
                       "2. the HTTP connector; the answer holds connector_id"),
        ClusterRequest("POST", "/_plugins/_ml/models/_register?deploy=true",
                       {"name": s.name, "function_name": "remote",
                        "description": "esrank keyphrases (remote model over esrank serve)",
                        "connector_id": CONNECTOR_ID},
                       f"3. a remote model on the connector: put the connector_id in; the answer holds model_id"),
        ClusterRequest("PUT", f"/_ingest/pipeline/{s.name}", pipeline,
                       "4. the ingest pipeline: put the model_id in; index with ?pipeline=" + s.name
                       + " or set it as the index's default_pipeline"),
    ]


def elasticsearch_requests(s: ConnectorSettings) -> list[ClusterRequest]:
    """The Elasticsearch 8.19+ requests: a custom-service inference endpoint and an ingest pipeline."""
    s.validate()
    headers = {"Content-Type": "application/json"}
    service_settings: dict[str, Any] = {"url": s.endpoint, "headers": headers}
    if s.token:
        service_settings["secret_parameters"] = {"esrank_token": s.token}
        headers["Authorization"] = "Bearer ${esrank_token}"
    service_settings["request"] = '{"docs": ${input}}'
    service_settings["response"] = {"json_parser": {"token_path": "$.results[*].keyphrases[*].phrase",
                                                    "weight_path": "$.results[*].keyphrases[*].score"}}
    tmp_in, tmp_out = f"{s.field}_input", f"{s.field}_phrases"
    pipeline = {
        "description": f"esrank keyphrases into '{s.field}' (esrank serve at {s.base})",
        "processors": [
            {"set": {"field": tmp_in, "value": f"{{{{{{{s.title_field}}}}}}}. {{{{{{{s.text_field}}}}}}}"}},
            {"inference": {"model_id": s.name, "input_output": [{"input_field": tmp_in, "output_field": tmp_out}]}},
            {"script": {"lang": "painless", "source": _ES_SCRIPT,
                        "params": {"tmp": tmp_out, "field": s.field, "model": s.model, "version": s.version}}},
            {"remove": {"field": [tmp_in, tmp_out]}},
        ],
    }
    return [
        ClusterRequest("PUT", f"/_inference/sparse_embedding/{s.name}",
                       {"service": "custom", "service_settings": service_settings},
                       "1. the inference endpoint: esrank serve as a custom service (phrase -> score)"),
        ClusterRequest("PUT", f"/_ingest/pipeline/{s.name}", pipeline,
                       "2. the ingest pipeline: index with ?pipeline=" + s.name
                       + " or set it as the index's default_pipeline"),
    ]


def connector_requests(flavor: str, settings: ConnectorSettings) -> list[ClusterRequest]:
    """The requests of a flavor (opensearch | elasticsearch)."""
    if flavor == "opensearch":
        return opensearch_requests(settings)
    if flavor == "elasticsearch":
        return elasticsearch_requests(settings)
    raise ConfigError(f"--flavor takes one of {', '.join(FLAVORS)}, not {flavor!r}")
