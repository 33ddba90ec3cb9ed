"""The FastAPI application factory, above the domains.

It assembles the web kit (``hippocrate.api``: problems, security headers) and every
domain's router; nothing below imports it, so a domain never depends on the whole app
(an import-linter contract holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hippocrate import __version__, logs
from hippocrate.admin import pages as admin_pages
from hippocrate.admin.api import router as admin
from hippocrate.api import limits, problems, security
from hippocrate.audit import chainer
from hippocrate.audit.api import router as audit
from hippocrate.audit.scheduler import run_checkpoints
from hippocrate.breach import pages as breach_pages
from hippocrate.breach.api import patient_router as breach_notices
from hippocrate.breach.api import router as breach
from hippocrate.config import Settings
from hippocrate.consultations import pages as consultations_pages
from hippocrate.consultations.api import router as consultations
from hippocrate.documents import pages as documents_pages
from hippocrate.documents.api import router as documents
from hippocrate.identity import passwords
from hippocrate.identity.api import router as identity
from hippocrate.identity.pages import account as identity_account
from hippocrate.identity.pages import public as identity_pages
from hippocrate.interop.api import router as interop
from hippocrate.notify.api import router as notify
from hippocrate.notify.pages import router as notify_pages
from hippocrate.ops import collectors, metrics, readiness
from hippocrate.patients import pages as patients_pages
from hippocrate.patients.api import router as patients
from hippocrate.runtime import Runtime
from hippocrate.web.pages import router as web_pages

# Pages (no /api prefix): hippocrate.web and each domain's pages.py. The page matrix
# (tests/web/test_page_access.py) walks these routers.
PAGES = (
    web_pages,
    identity_pages,
    identity_account,
    patients_pages.router,
    consultations_pages.router,
    consultations_pages.public,
    documents_pages.public,
    documents_pages.router,
    breach_pages.router,
    breach_pages.public,
    admin_pages.router,
    admin_pages.public,
    patients_pages.public,
    notify_pages,
)


def check_health(runtime: Runtime) -> dict[str, str] | JSONResponse:
    """What ``/health`` and ``/health/ready`` answer: ``hippocrate.ops.readiness``."""
    ready = readiness.check(runtime)
    if ready.ok:
        return ready.answer()
    return JSONResponse(
        ready.answer(), status_code=503, headers={"Retry-After": str(readiness.RETRY_AFTER)}
    )


class RequestMetrics:
    """Counts every answered request by route template (never the path asked: it holds
    ids) and status, and its latency. Outermost, so a refusal of any layer counts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not metrics.enabled():
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            state = scope.get("state") or {}
            metrics.request(
                scope.get("method", "GET"),
                route_template(scope),
                status,
                time.perf_counter() - started,
                state.get(REFUSAL) if isinstance(state, dict) else None,
            )


# FastAPI keeps the route as included (with its router's prefix) apart from the
# router's own, in a private helper: asked if present, else the route's own template.
_effective_route = getattr(fastapi.routing, "_get_scope_effective_route_context", None)


def route_template(scope: Scope) -> str:
    """The template of the route that answered (``/api/v1/consultations/{consultation_id}``),
    never the path asked; ``unmatched`` when no route did (a 404 of the router)."""
    context = _effective_route(scope) if callable(_effective_route) else None
    for candidate in (context, scope.get("route")):
        template = getattr(candidate, "path_format", None)
        if isinstance(template, str) and template:
            return template
    return "unmatched"


#: Where an exception handler leaves the name of the refusal it answered.
REFUSAL = "hippocrate_refusal"


def _name_refusals(app: FastAPI) -> None:
    """Every exception handler first notes the refusal's kind (the error's class name,
    never its message) for the request's metrics."""
    for exc_class, handler in list(app.exception_handlers.items()):
        if not isinstance(exc_class, type):
            continue

        async def noting(request: Request, exc: Exception, _handler: Any = handler) -> Any:
            request.state.__setattr__(REFUSAL, type(exc).__name__)
            answer = _handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer

        app.exception_handlers[exc_class] = noting


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The key provider and database are opened here, so a missing key
    file or HSM stops the start with a clear error instead of serving anything."""
    owned = runtime is None
    rt = runtime or Runtime.open(settings or Settings())
    if owned:
        logs.configure(rt.settings)  # whichever server runs it: every logger goes one way

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = rt.settings.audit_checkpoint_seconds
        task = asyncio.create_task(run_checkpoints(rt, interval)) if interval > 0 else None
        linking = chainer.start(rt.sessions.engine, rt.settings.audit_chain_seconds)
        with contextlib.ExitStack() as stack:
            if metrics.configure(rt.settings) is not None:
                sample = metrics.watch(rt.sessions.vault, rt.sessions.engine)
                stack.enter_context(
                    metrics.serving(rt.settings, extra=collectors.StateCollector(rt), sample=sample)
                )
            yield
        if linking is not None:
            await asyncio.to_thread(linking.stop)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if owned:
            rt.close()

    app = FastAPI(
        title="Hippocrate",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        # Swagger UI loads scripts from a CDN, which the CSP forbids: no docs page; the
        # OpenAPI document is the reference.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.runtime = rt
    # Password hashes share this process's CPUs and memory: a bounded pool of slots.
    passwords.use_pool(slots=rt.settings.hashing_slots, wait=rt.settings.hashing_wait_seconds)
    problems.install(app)
    # Inside the security headers, which its 413 carries.
    limits.install(app, rt.settings, pages=consultations_pages.UPLOAD_ROUTES)
    security.install(app)
    _name_refusals(app)
    app.add_middleware(RequestMetrics)
    app.add_middleware(logs.RequestLogMiddleware)  # outermost: one line per request
    for router in (
        identity,
        patients,
        interop,
        consultations,
        documents,
        notify,
        admin,
        audit,
        breach,
        breach_notices,
    ):
        app.include_router(router, prefix="/api/v1")
    for pages in PAGES:
        app.include_router(pages)

    @app.get("/api/v1/health", tags=["meta"], response_model=None)
    @app.get("/api/v1/health/ready", tags=["meta"], response_model=None)
    def health(request: Request) -> dict[str, str] | JSONResponse:
        """Readiness that tells the truth: 200 only if the database answers, the key
        provider holds every root key version a live data key is wrapped under and the
        newest data key unwraps (so records open), the guard's state store answers (so
        reads are allowed), the chainer keeps up and the job queue answers; otherwise
        503 with Retry-After, naming the failing parts."""
        runtime: Runtime = request.app.state.runtime
        return check_health(runtime)

    @app.get("/api/v1/health/live", tags=["meta"])
    def live() -> dict[str, str]:
        """Liveness: the process answers (nothing else is asked)."""
        return readiness.live()

    return app
