"""What a request may hold, and turning a request body into documents: bounded size (413), well-formed JSON
(400), the expected shape and document length (422). Errors carry their HTTP status and a one-line reason."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TEXT_KEYS = ("text", "abstract", "body", "content")  # = esrank.ranking.api.TEXT_KEYS


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on one request: body bytes, documents, characters per document (title + text)."""

    max_body_bytes: int = 1_048_576
    max_docs: int = 64
    max_doc_chars: int = 20_000

    def validate(self) -> None:
        """Raise ValueError on a bound below 1."""
        for name in ("max_body_bytes", "max_docs", "max_doc_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class RequestError(Exception):
    """A request the service refuses: an HTTP status and a one-line reason for the JSON answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RequestDoc:
    """One document of a request: the caller's id (or None), title and text."""

    id: str | None
    title: str
    text: str


def _doc(value: Any, where: str, limits: ServeLimits) -> RequestDoc:
    title: Any
    text: Any
    raw_id: Any
    if isinstance(value, str):  # a bare string: "title. abstract" (what the Elasticsearch custom service sends)
        title, text, raw_id = "", value, None
    elif isinstance(value, dict):
        title = value.get("title")
        title = "" if title is None else title
        text = next((value[k] for k in TEXT_KEYS if value.get(k) is not None), "")
        raw_id = value.get("id")
        if not isinstance(title, str) or not isinstance(text, str):
            raise RequestError(422, f"{where}: 'title' and 'text' must be strings")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            raise RequestError(422, f"{where}: 'id' must be a string or a number")
    else:
        raise RequestError(422, f"{where}: a document is an object {{id?, title, text}} or a string, "
                                f"not {type(value).__name__}")
    if not (title.strip() or text.strip()):
        raise RequestError(422, f"{where}: empty document (no title and no text)")
    size = len(title) + len(text)
    if size > limits.max_doc_chars:
        raise RequestError(422, f"{where}: document of {size} characters; at most {limits.max_doc_chars} allowed")
    return RequestDoc(None if raw_id is None else str(raw_id), title, text)


def parse_request(body: bytes, limits: ServeLimits) -> list[RequestDoc]:
    """The documents of a ``POST /v1/keyphrases`` body: ``{"docs": [...]}`` or one ``{"title", "text"}``."""
    if len(body) > limits.max_body_bytes:
        raise RequestError(413, f"request body of {len(body)} bytes; at most {limits.max_body_bytes} allowed")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(400, f"malformed JSON: {e}") from None
    if not isinstance(payload, dict):
        raise RequestError(422, "the body must be a JSON object: {\"docs\": [...]} or {\"title\", \"text\"}")
    if "docs" in payload:
        docs = payload["docs"]
        if not isinstance(docs, list):
            raise RequestError(422, "'docs' must be a list of documents")
        if not docs:
            raise RequestError(422, "'docs' is empty")
        if len(docs) > limits.max_docs:
            raise RequestError(413, f"{len(docs)} documents in one request; at most {limits.max_docs} allowed")
        return [_doc(d, f"docs[{i}]", limits) for i, d in enumerate(docs)]
    if any(k in payload for k in ("title", *TEXT_KEYS)):
        return [_doc(payload, "document", limits)]
    raise RequestError(422, "the body needs 'docs' (a list of documents) or a single document's 'title'/'text'")
