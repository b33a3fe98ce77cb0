"""The keyphrase service: a Starlette app over a ``KeyphraseRanker``, served by uvicorn.

``POST /v1/keyphrases`` ranks one or many documents (batched with other callers' by ``MicroBatcher``);
``GET /healthz`` says whether the service takes work; ``GET /v1/info`` names the model, index and settings.
Every refusal is a JSON ``{"error", "status"}``; with a token, ``/v1/*`` needs ``Authorization: Bearer TOKEN``.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import threading
from typing import Any, AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..corpus import Document
from ..predictions import Prediction
from ..ranking.api import KeyphraseRanker
from .batching import BatcherBusy, BatcherClosed, MicroBatcher
from .limits import RequestError, ServeLimits, parse_request

log = logging.getLogger(__name__)


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason, "status": status}, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes; at most {limit} allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class KeyphraseService:
    """The service's state: the ranker, its batcher (started with the app), limits and the optional token."""

    def __init__(self, ranker: KeyphraseRanker, *, limits: ServeLimits | None = None, max_batch: int = 64,
                 max_wait_ms: float = 5.0, max_queue: int = 1024, token: str | None = None,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.ranker = ranker
        self.limits = limits or ServeLimits()
        self.limits.validate()
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.max_queue = max_queue
        self._token = token.encode("utf-8") if token else None
        self.on_ready = on_ready
        self.batcher: MicroBatcher[Document, Prediction] | None = None

    # -- lifetime --------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        """Start the batch worker; on shutdown finish every queued batch before the app stops."""
        self.batcher = MicroBatcher(self.ranker.rank_all, max_batch=self.max_batch, max_wait_ms=self.max_wait_ms,
                                    max_queue=self.max_queue)
        if self.on_ready is not None:
            self.on_ready()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self.batcher.close)

    # -- checks ----------------------------------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        """Whether the request carries the bearer token (always true without one); constant-time compare."""
        if self._token is None:
            return True
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode("utf-8"), self._token)

    def _unauthorized(self) -> JSONResponse:
        return _error(401, "missing or wrong bearer token", {"WWW-Authenticate": 'Bearer realm="esrank"'})

    # -- endpoints -------------------------------------------------------------------------------------------

    async def keyphrases(self, request: Request) -> Response:
        """POST /v1/keyphrases: {"docs": [{id?, title, text}]} or {title, text} → {"results": [...]}."""
        if not self.authorized(request):
            return self._unauthorized()
        try:
            body = await _read_body(request, self.limits.max_body_bytes)
            docs = parse_request(body, self.limits)
            documents = [self.ranker.to_document({"id": d.id, "title": d.title, "text": d.text}) for d in docs]
            if self.batcher is None:
                raise BatcherClosed("not started")
            predictions = await asyncio.wrap_future(self.batcher.submit(documents))
        except RequestError as e:
            return _error(e.status, e.reason)
        except BatcherClosed:
            return _error(503, "the service is shutting down")
        except BatcherBusy:
            return _error(503, "too many requests waiting; retry later", {"Retry-After": "1"})
        except Exception:  # noqa: BLE001 - logged here, never sent as a traceback
            log.exception("ranking failed")
            return _error(500, "internal error while ranking (see the service log)")
        results = [{"id": d.id, "keyphrases": [k.to_json() for k in p.keyphrases]} for d, p in zip(docs, predictions)]
        info = self.ranker.info()
        return JSONResponse({"results": results, "model": info["model"], "version": info["version"]})

    async def healthz(self, request: Request) -> Response:
        """GET /healthz: 200 while the service takes work, 503 once it is shutting down."""
        if self.batcher is None or not self.batcher.accepting:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def info(self, request: Request) -> Response:
        """GET /v1/info: model, index, k, method, version, limits and batching."""
        if not self.authorized(request):
            return self._unauthorized()
        info: dict[str, Any] = self.ranker.info()
        info["limits"] = {"max_body_bytes": self.limits.max_body_bytes, "max_docs": self.limits.max_docs,
                          "max_doc_chars": self.limits.max_doc_chars}
        st = self.batcher.stats if self.batcher is not None else None
        info["batching"] = {"max_batch": self.max_batch, "max_wait_ms": self.max_wait_ms,
                            "batches": st.batches if st else 0, "requests": st.requests if st else 0,
                            "documents": st.items if st else 0}
        return JSONResponse(info)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    reason = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return _error(status, str(reason))


def build_app(service: KeyphraseService) -> Starlette:
    """The Starlette app of a service (routes, JSON errors, lifespan)."""
    routes = [
        Route("/v1/keyphrases", service.keyphrases, methods=["POST"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/v1/info", service.info, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=service.lifespan,
                     exception_handlers={HTTPException: _http_error, Exception: _http_error})


def run(service: KeyphraseService, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "warning",
        access_log: bool = False, graceful_timeout: int | None = None) -> None:
    """Serve until SIGTERM/SIGINT: then stop accepting, finish in-flight requests and queued batches."""
    import uvicorn

    config = uvicorn.Config(build_app(service), host=host, port=port, log_level=log_level, access_log=access_log,
                            lifespan="on", timeout_graceful_shutdown=graceful_timeout, server_header=False)
    # uvicorn re-raises the signal that stopped it once it has shut down; a no-op handler meanwhile makes that a
    # normal return, so the caller can close the index and the model and exit 0
    handled = (signal.SIGINT, signal.SIGTERM)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in handled} if main_thread else {}
    try:
        uvicorn.Server(config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
