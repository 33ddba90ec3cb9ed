"""The FastAPI application factory, above the domains.

It assembles the web kit (``hippocrate.api``: problems, security headers) and every
domain's router; nothing below imports it, so a domain never depends on the whole app
(an import-linter contract holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from sqlalchemy import text

from hippocrate import __version__
from hippocrate.admin.api import router as admin
from hippocrate.api import problems, security
from hippocrate.audit.api import router as audit
from hippocrate.audit.scheduler import run_checkpoints
from hippocrate.config import Settings
from hippocrate.consultations.api import router as consultations
from hippocrate.identity.api import router as identity
from hippocrate.notify.api import router as notify
from hippocrate.patients.api import router as patients
from hippocrate.runtime import Runtime


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The key provider and database are opened here, so a missing key
    file or HSM stops the start with a clear error instead of serving anything."""
    owned = runtime is None
    rt = runtime or Runtime.open(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = rt.settings.audit_checkpoint_seconds
        task = asyncio.create_task(run_checkpoints(rt, interval)) if interval > 0 else None
        yield
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
    problems.install(app)
    security.install(app)
    for router in (identity, patients, consultations, notify, admin, audit):
        app.include_router(router, prefix="/api/v1")

    @app.get("/api/v1/health", tags=["meta"])
    def health(request: Request) -> dict[str, str]:
        """Liveness and readiness: the database answers and the key provider holds a key."""
        runtime: Runtime = request.app.state.runtime
        with runtime.sessions() as session:
            session.execute(text("SELECT 1"))
        version = runtime.sessions.vault.provider.current_version()
        return {"status": "ok", "database": "ok", "root_key_version": str(version)}

    return app
