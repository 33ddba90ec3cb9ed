"""The FastAPI application factory, above the domains.

It assembles the web kit (``hippocrate.api``: problems, security headers) and every
domain's router; nothing below imports it, so a domain never depends on the whole app
(an import-linter contract holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from hippocrate import __version__
from hippocrate.admin import pages as admin_pages
from hippocrate.admin.api import router as admin
from hippocrate.api import limits, problems, security
from hippocrate.audit.api import router as audit
from hippocrate.audit import chainer
from hippocrate.audit.scheduler import run_checkpoints
from hippocrate.breach import pages as breach_pages
from hippocrate.breach.api import patient_router as breach_notices
from hippocrate.breach.api import router as breach
from hippocrate.config import Settings
from hippocrate.consultations import pages as consultations_pages
from hippocrate.consultations.api import router as consultations
from hippocrate.documents import pages as documents_pages
from hippocrate.documents.api import router as documents
from hippocrate.guard.state import GuardUnavailable
from hippocrate.identity import passwords
from hippocrate.identity.api import router as identity
from hippocrate.identity.pages import account as identity_account
from hippocrate.identity.pages import public as identity_pages
from hippocrate.interop.api import router as interop
from hippocrate.keyring.models import DataKeyRecord
from hippocrate.notify.api import router as notify
from hippocrate.notify.pages import router as notify_pages
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
    """What ``/health`` answers (see there)."""
    report = {"status": "ok"}
    failing: list[str] = []
    held: list[int] = []
    try:
        held = runtime.sessions.vault.provider.versions()
        report["root_key_version"] = str(max(held))
        report["key_provider"] = "ok"
    except Exception:  # noqa: BLE001 - any failure of the provider is a failing part
        report["key_provider"] = "unavailable"
        failing.append("key_provider")
    try:
        with runtime.sessions() as session:
            needed = session.scalars(
                select(DataKeyRecord.root_version)
                .where(DataKeyRecord.wrapped.is_not(None), DataKeyRecord.root_version.not_in(held))
                .limit(1)
            ).first()
        report["database"] = "ok"
        if held and needed is not None:
            report["key_provider"] = f"root key version {needed} is not held"
            failing.append("key_provider")
    except SQLAlchemyError:
        report["database"] = "unavailable"
        failing.append("database")
    try:
        assert runtime.guard is not None
        runtime.guard.state.contained(uuid.UUID(int=0))
        report["guard"] = "ok"
    except GuardUnavailable:
        report["guard"] = "unavailable"
        failing.append("guard")
    if not failing:
        return report
    report["status"] = "unavailable"
    report["failing"] = ", ".join(dict.fromkeys(failing))
    return JSONResponse(report, status_code=503, headers={"Retry-After": "5"})


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. The key provider and database are opened here, so a missing key
    file or HSM stops the start with a clear error instead of serving anything."""
    owned = runtime is None
    rt = runtime or Runtime.open(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = rt.settings.audit_checkpoint_seconds
        task = asyncio.create_task(run_checkpoints(rt, interval)) if interval > 0 else None
        linking = chainer.start(rt.sessions.engine, rt.settings.audit_chain_seconds)
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
    def health(request: Request) -> dict[str, str] | JSONResponse:
        """Readiness that tells the truth: 200 only if the database answers, the key
        provider holds every root key version a live data key is wrapped under (so
        records open), and the guard's state store answers (so reads are allowed);
        otherwise 503 naming the failing part."""
        runtime: Runtime = request.app.state.runtime
        return check_health(runtime)

    return app
