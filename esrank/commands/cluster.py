"""``esrank cluster print-connector``: the requests that make Elasticsearch or OpenSearch call ``esrank serve``."""
from __future__ import annotations

import dataclasses
import json
import os
import urllib.error
import urllib.request
from typing import Any

import click

from ..errors import ConfigError
from .common import echo_err


def _service_info(url: str, token: str | None, timeout: float = 5.0) -> dict[str, Any] | None:
    """GET /v1/info of the service (None when it cannot be reached)."""
    req = urllib.request.Request(url.rstrip("/") + "/v1/info")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the user's own service URL
            info = json.loads(resp.read())
            return info if isinstance(info, dict) else None
    except (OSError, ValueError, urllib.error.URLError):
        return None


@click.group("cluster")
def cluster_group() -> None:
    """Plug esrank into a live cluster (see docs/cluster.md)."""


@cluster_group.command("print-connector")
@click.option("--flavor", type=click.Choice(["opensearch", "elasticsearch"]), required=True,
              help="opensearch: ml-commons connector + remote model + ml_inference pipeline (2.14+); "
                   "elasticsearch: custom-service inference endpoint + inference pipeline (8.19+).")
@click.option("--url", required=True, envvar="ESRANK_SERVE_URL",
              help="URL of `esrank serve` as the cluster nodes reach it, e.g. http://esrank:8000.")
@click.option("--token-env", default=None, metavar="VAR",
              help="Environment variable holding the service's bearer token (the one given to `esrank serve` as "
                   "ESRANK_SERVE_TOKEN); the printed requests then carry it: send them, do not store them.")
@click.option("--name", default="esrank-keyphrases", show_default=True,
              help="Name of the connector / model / inference endpoint and of the ingest pipeline.")
@click.option("--field", default="esrank", show_default=True, envvar="ESRANK_FIELD",
              help="Enrichment field written by the pipeline (as `esrank enrich --field`).")
@click.option("--title-field", default="title", show_default=True, help="Document field holding the title.")
@click.option("--text-field", default="abstract", show_default=True, help="Document field holding the text.")
@click.option("--format", "fmt", type=click.Choice(["console", "json"]), default="console", show_default=True,
              help="console: Dev Tools console requests; json: a list of {method, path, body, note}.")
def print_connector_cmd(flavor: str, url: str, token_env: str | None, name: str, field: str, title_field: str,
                        text_field: str, fmt: str) -> None:
    """Print the exact requests that make the cluster call `esrank serve` at ingest time.

    \b
    esrank cluster print-connector --flavor opensearch --url http://esrank:8000
    esrank cluster print-connector --flavor elasticsearch --url http://esrank:8000 --token-env ESRANK_SERVE_TOKEN
    Elasticsearch: the model and version written into the field come from the service's /v1/info.
    """
    from ..serve.connectors import ConnectorSettings, connector_requests

    token = None
    if token_env:
        token = os.environ.get(token_env) or None
        if token is None:
            raise ConfigError(f"--token-env {token_env}: that environment variable is not set")
    settings = ConnectorSettings(url=url, name=name, field=field, title_field=title_field, text_field=text_field,
                                 token=token)
    settings.validate()
    if flavor == "elasticsearch":  # its pipeline records model and version itself (OpenSearch maps the answer's)
        info = _service_info(url, token)
        if info is not None:
            settings = dataclasses.replace(settings, model=str(info.get("model")), version=str(info.get("version")))
        else:
            echo_err(f"esrank: warning: {settings.base}/v1/info cannot be reached; the pipeline records model "
                     f"'{settings.model}' and version '{settings.version}'")
    requests = connector_requests(flavor, settings)
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in requests], indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(r.console() for r in requests), nl=False)


COMMANDS = [cluster_group]
