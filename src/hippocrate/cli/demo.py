"""``hippocrate init | seed | serve | demo``: set up and run one machine."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from sqlalchemy import func, select

from hippocrate.blobs import FileBlobStore
from hippocrate.cli.context import configure_logs, fail, platform_work, runtime, settings
from hippocrate.cli.progress import Progress as Bar
from hippocrate.config import Settings
from hippocrate.db.engine import make_engine
from hippocrate.db.migrate import upgrade
from hippocrate.demo.consultations import SeedConflict
from hippocrate.demo.seed import CREDENTIALS_FILE, seed_demo, sign_in_help, write_credentials
from hippocrate.guard.honeytokens import CanaryDomainMissing, Planter, plant, planted
from hippocrate.identity.errors import IdentityError
from hippocrate.identity.models import Account, Role
from hippocrate.tags import Purpose
from hippocrate.vault.documents import create_document_signing_key
from hippocrate.vault.factory import initialise_provider
from hippocrate.vault.providers.base import HoldsDocumentKey

if TYPE_CHECKING:
    import uvicorn

HONEYTOKENS_AT_INIT = 3


def init() -> None:
    """Create the data folder and root keys (if absent) and migrate the database."""
    config = settings()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.data_dir.chmod(0o700)
    provider = initialise_provider(config)
    try:
        typer.echo(f"key provider: {provider.name}, root key version {provider.current_version()}")
        if isinstance(provider, HoldsDocumentKey):
            provider.document_key()  # made by initialise_provider, checked here
            typer.echo("document signing key: held in the token")
    finally:
        provider.close()
    signing = config.resolved_document_signing_key_file
    if not isinstance(provider, HoldsDocumentKey) and not signing.exists():
        create_document_signing_key(signing)
        typer.echo(f"document signing key created: {signing}")
    engine = make_engine(config.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")
    with runtime() as rt:
        assert rt.guard is not None
        try:
            with platform_work(rt, Purpose.SETUP) as session:
                if planted(session=session) == 0:
                    plant(session=session, guard=rt.guard, count=HONEYTOKENS_AT_INIT)
                    typer.echo(f"{HONEYTOKENS_AT_INIT} honeytoken patients planted")
        except CanaryDomainMissing as exc:
            # Keys and database are ready; init plants them once run again with it.
            raise fail(str(exc)) from None


def seed(
    patients: int = typer.Option(20, "--patients", min=1, max=1_000_000, help="How many patients."),
    random_seed: int | None = typer.Option(None, "--seed", help="Make the data reproducible."),
) -> None:
    """Create synthetic French patients with their accounts, practitioners of every
    specialty, staff accounts and consultations in every status; write the demo
    credentials file (0600)."""
    _seed(patients=patients, random_seed=random_seed, public_url=None)


def _seed(*, patients: int, random_seed: int | None, public_url: str | None) -> None:
    """``seed``; the sign-in help names ``public_url`` (default: the configured one)."""
    with runtime() as rt:
        try:
            with (
                Bar(
                    "seed",
                    unit="accounts",
                    interrupted=lambda done: (
                        f"{done} accounts made, all rolled back (the demo is seeded in "
                        "one unit of work): nothing was written; run the same command again"
                    ),
                ) as bar,
                platform_work(rt, Purpose.DEMO_SEED) as session,
            ):
                assert rt.guard is not None
                # One honeytoken per 20 patients (at least those init planted), mixed
                # in with the real ones; those init planted get their lives here too.
                missing = max(HONEYTOKENS_AT_INIT, patients // 20) - planted(session=session)
                lifeless = len(Planter(session=session, guard=rt.guard).lifeless())
                report = seed_demo(
                    session=session,
                    settings=rt.settings,
                    blobs=FileBlobStore(rt.settings.blob_dir),
                    count=patients,
                    seed=random_seed,
                    now=datetime.now(UTC),
                    guard=rt.guard,
                    honeytokens=max(0, missing) + lifeless,
                    start=bar.set_total,
                    progress=bar.advance,
                )
        except (IdentityError, SeedConflict, CanaryDomainMissing) as exc:
            # Nothing was written: the unit of work rolled back (files included).
            typer.echo(f"hippocrate: error: {exc}", err=True)
            raise typer.Exit(1) from None
        credentials = report.credentials()
        path = write_credentials(rt.settings.data_dir, credentials)
        typer.echo(f"{len(report.patients)} patients created; demo credentials in {path}")
        for line in report.summary():
            typer.echo(line)
        url = public_url or rt.settings.public_url
        typer.echo(sign_in_help(public_url=url, path=path, credentials=credentials))


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Run the web server (the key provider and database are checked first)."""
    import uvicorn

    with runtime() as rt:
        pass  # fail closed here, with one line, rather than inside the server
    configure_logs(logging.INFO)  # the requests' lines too
    if not rt.settings.smtp_host:
        typer.echo(outbox_warning(rt.settings), err=True)
    typer.echo(
        f"Hippocrate on http://{host}:{port}/  (API: http://{host}:{port}/api/v1/openapi.json)"
    )
    uvicorn.Server(server_config("hippocrate.app:create_app", host=host, port=port)).run()


def server_config(app: Any, *, host: str, port: int) -> uvicorn.Config:
    """How ``serve`` runs uvicorn: without its proxy-header middleware, which believes
    ``X-Forwarded-For`` from 127.0.0.1; the app decides who is a trusted proxy
    (``HIPPOCRATE_TRUSTED_PROXIES``, ``hippocrate.api.client``). ``app`` is the factory's
    import path, or an app (tests)."""
    import uvicorn

    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        host=host,
        port=port,
        proxy_headers=False,
        # Logging is hippocrate.logs' (configured by the command): uvicorn installs no
        # handler of its own, and its access log (raw paths, client addresses) is off.
        log_config=None,
        access_log=False,
    )


def outbox_warning(config: Settings) -> str:
    """The one line ``serve`` prints on stderr without SMTP: nothing is delivered, and
    the outbox holds live links."""
    return (
        "hippocrate: warning: no SMTP host (HIPPOCRATE_SMTP_HOST): emails are not "
        f"delivered; they and their live links are written to the outbox at "
        f"{config.outbox_dir.resolve()} (for development only)"
    )


def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Initialise, seed synthetic data if the database is empty, and serve."""
    init()
    with runtime() as rt, rt.sessions() as session:
        # Staff accounts, not patients: init plants honeytoken patients (and their
        # accounts) in every database.
        empty = not session.scalar(
            select(func.count()).select_from(Account).where(Account.role != Role.PATIENT)
        )
    # Browsers keep the pages' Secure cookies from localhost over plain HTTP.
    shown = "localhost" if host in ("127.0.0.1", "::1", "localhost") else host
    served = f"http://{shown}:{port}"
    if empty:
        _seed(patients=50, random_seed=None, public_url=served)
    else:
        path = rt.settings.data_dir / CREDENTIALS_FILE
        typer.echo(f"existing data kept; demo credentials in {path}")
        try:
            credentials = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            credentials = None  # no file, or not ours: nothing to say about signing in
        if isinstance(credentials, dict):
            typer.echo(sign_in_help(public_url=served, path=path, credentials=credentials))
    serve(host=host, port=port)


def demo_account(email: str = typer.Argument(..., help="A demo account's email.")) -> None:
    """Print a demo account's password and, if it has a second factor, its current code
    (from the demo credentials file, readable by its owner only)."""
    import pyotp

    path = settings().data_dir / CREDENTIALS_FILE
    try:
        credentials = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise fail(f"no demo credentials file at {path}: run hippocrate demo first") from None
    entries = [e for group in credentials.values() if isinstance(group, list) for e in group]
    found = next((e for e in entries if str(e.get("email", "")).lower() == email.lower()), None)
    if found is None:
        raise fail(f"no demo account {email} in {path}")
    typer.echo(f"password: {found['password']}")
    if found.get("totp_secret"):
        totp = pyotp.TOTP(found["totp_secret"])
        left = totp.interval - int(datetime.now(UTC).timestamp()) % totp.interval
        typer.echo(f"code:     {totp.now()}  (for {left} s more; a code is accepted once)")
