"""``hippocrate init | seed | serve | demo``: set up and run one machine."""

from __future__ import annotations

import typer
from sqlalchemy import func, select

from hippocrate.cli.context import runtime, settings
from hippocrate.db.engine import make_engine
from hippocrate.db.migrate import upgrade
from hippocrate.demo.seed import CREDENTIALS_FILE, seed_patients, write_credentials
from hippocrate.guard.honeytokens import plant
from hippocrate.patients.models import Patient
from hippocrate.vault.factory import initialise_provider


def init() -> None:
    """Create the data folder and root keys (if absent) and migrate the database."""
    config = settings()
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.data_dir.chmod(0o700)
    provider = initialise_provider(config)
    try:
        typer.echo(f"key provider: {provider.name}, root key version {provider.current_version()}")
    finally:
        provider.close()
    engine = make_engine(config.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"database ready: {engine.url.render_as_string(hide_password=True)}")


def seed(
    patients: int = typer.Option(20, "--patients", min=1, max=1_000_000, help="How many patients."),
    random_seed: int | None = typer.Option(None, "--seed", help="Make the data reproducible."),
) -> None:
    """Create synthetic French patients and write the demo credentials file (0600)."""
    with runtime() as rt, rt.sessions.begin() as session:
        created = seed_patients(session=session, count=patients, seed=random_seed)
        assert rt.guard is not None
        # One honeytoken per 20 patients (at least 3), mixed in with the real ones.
        plant(session=session, guard=rt.guard, count=max(3, patients // 20))
    path = write_credentials(rt.settings.data_dir, {"patients": created})
    typer.echo(f"{len(created)} patients created; demo credentials in {path}")


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Run the web server (the key provider and database are checked first)."""
    import uvicorn

    with runtime():
        pass  # fail closed here, with one line, rather than inside the server
    typer.echo(
        f"Hippocrate on http://{host}:{port}/  (API: http://{host}:{port}/api/v1/openapi.json)"
    )
    uvicorn.run("hippocrate.api.app:create_app", factory=True, host=host, port=port)


def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
) -> None:
    """Initialise, seed synthetic data if the database is empty, and serve."""
    init()
    with runtime() as rt, rt.sessions() as session:
        empty = not session.scalar(select(func.count()).select_from(Patient))
    if empty:
        seed(patients=50, random_seed=None)
    else:
        credentials = rt.settings.data_dir / CREDENTIALS_FILE
        typer.echo(f"existing data kept; demo credentials in {credentials}")
    serve(host=host, port=port)


def register(app: typer.Typer) -> None:
    for command in (init, seed, serve, demo):
        app.command(command.__name__)(command)
