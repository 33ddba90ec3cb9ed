"""What the tamper tests share: a deployment driven through the real CLI, a thief's
tools (rewrite the chain, re-sign checkpoints with the key file), and real witnesses (an
HTTP server and an SMTP server on the loopback interface)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import delete, update

from hippocrate.audit.chain import FIELDS, GENESIS, link
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.audit.service import (
    Checkpoint,
    PendingEvent,
    append,
    checkpoint_payload,
    read_checkpoints,
)
from hippocrate.vault.providers.file import FileKeyProvider
from tests.cli.test_cli import Cli, Ran
from tests.conftest import Store


def event(n: int, at: datetime) -> PendingEvent:
    """A practitioner's read of a patient's messages: ids and categories only."""
    return PendingEvent(
        action="consultation:message:read",
        actor_role="practitioner",
        outcome="allowed",
        at=at,
        actor_account_id=uuid.UUID(int=1),
        patient_id=uuid.UUID(int=100 + n % 7),
        resources=(f"message:{uuid.UUID(int=1000 + n)}",),
        categories=("health",),
        purpose="care",
        request_id=f"req-{n}",
    )


@dataclass
class Deployment:
    """A store (SQLite or PostgreSQL) and its key file, run by the ``hippocrate``
    command; events come in as the app appends them."""

    store: Store
    home: Path
    key_file: Path
    env: dict[str, str] = field(default_factory=dict)
    appended: int = 0

    @property
    def data_dir(self) -> Path:
        return self.home / "var"

    @property
    def checkpoint_file(self) -> Path:
        return self.data_dir / "audit" / "checkpoints.jsonl"

    @property
    def mirror(self) -> Path:
        return self.home / "elsewhere" / "checkpoints.jsonl"

    def cli(self) -> Cli:
        """The command line on this deployment (the CLI tests' runner, with its
        database, key file and checkpoint timing)."""
        return Cli(
            self.home,
            {
                "HIPPOCRATE_DATABASE_URL": self.store.url,
                "HIPPOCRATE_KEY_FILE": str(self.key_file),
                "HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "60",
                "HIPPOCRATE_AUDIT_CHECKPOINT_GRACE_SECONDS": "30",
                **self.env,
            },
        )

    def run(self, *args: str, **env: str) -> Ran:
        return self.cli().run(*args, **env)

    def ok(self, *args: str, **env: str) -> str:
        return self.cli().ok(*args, **env)

    def traffic(self, count: int, *, at: datetime | None = None) -> None:
        """``count`` events, as the app appends them (dated now unless ``at``)."""
        when = at or datetime.now(UTC)
        with self.store.sessions.begin() as session:
            append(session, [event(self.appended + n, when) for n in range(count)])
        self.appended += count

    def working_day(self, batches: int = 5, size: int = 10, *, at: datetime | None = None) -> None:
        """Traffic, and a checkpoint after each batch (as the app writes them)."""
        for _ in range(batches):
            self.traffic(size, at=at)
            assert "checkpoint written" in self.ok("audit", "checkpoint")


def assert_refused(ran: Ran, *fragments: str) -> str:
    """``audit verify`` failed: exit 1, one readable line on stderr, the report on
    stdout, never "intact"."""
    assert ran.code == 1, str(ran)
    assert "Traceback" not in ran.out + ran.err, str(ran)
    lines = ran.err.splitlines()
    assert len(lines) == 1, str(ran)
    assert lines[0].startswith("hippocrate: error: audit trail tampered"), str(ran)
    assert not ran.out.startswith("audit trail intact"), str(ran)
    assert "proved:" in ran.out, str(ran)
    for fragment in fragments:
        assert fragment in ran.out + ran.err, str(ran)
    return lines[0]


# -- the thief ------------------------------------------------------------------------


def rewrite_history(store: Store, *, seq: int, outcome: str = "refused") -> None:
    """Change one event and recompute every hash after it, and the head: the chain
    holds together again, as anyone with the database can make it."""
    with store.sessions.begin() as session:
        rows = session.query(AuditEvent).order_by(AuditEvent.seq).all()
        previous = GENESIS
        for row in rows:
            if row.seq == seq:
                row.outcome = outcome
            row.prev_hash = previous
            row.hash = link(previous, {name: getattr(row, name) for name in FIELDS})
            previous = row.hash
        session.execute(update(AuditHead).values(hash=previous))


def roll_back(store: Store, *, to: int) -> None:
    """Remove every event after ``to`` and fix the head (a restored old backup)."""
    with store.sessions.begin() as session:
        kept = session.get(AuditEvent, to)
        assert kept is not None
        session.execute(delete(AuditEvent).where(AuditEvent.seq > to))
        session.execute(update(AuditHead).values(seq=to, hash=kept.hash))


def resign(store: Store, key_file: Path, path: Path) -> None:
    """Re-sign every checkpoint of ``path`` over the chain as it now is, with the key
    file: what whoever holds the data folder and its key file can do."""
    provider = FileKeyProvider(key_file)
    with store.sessions() as session:
        hashes = dict(session.query(AuditEvent.seq, AuditEvent.hash).all())
    lines = []
    for old in read_checkpoints(path):
        head = hashes[old.seq]
        signature = provider.sign(checkpoint_payload(old.seq, head, old.at))
        lines.append(Checkpoint(old.seq, head, old.at, signature).to_line())
    provider.close()
    path.write_text("".join(line + "\n" for line in lines), encoding="ascii")


def keep_first(path: Path, count: int) -> None:
    """Truncate a checkpoint file to its first ``count`` lines."""
    lines = path.read_text(encoding="ascii").splitlines()[:count]
    path.write_text("".join(line + "\n" for line in lines), encoding="ascii")


# -- a webhook witness ----------------------------------------------------------------


@dataclass
class WebhookWitness:
    """An HTTP server on loopback that keeps every body it is POSTed, one line each,
    in ``copy`` (the witness copy), and answers ``status``."""

    url: str
    copy: Path
    status: int = 200
    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [body.decode("ascii") for body in self.bodies]


def serve_webhook(copy: Path) -> Iterator[WebhookWitness]:
    witness = WebhookWitness(url="", copy=copy)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if witness.status == 200:
                witness.bodies.append(body)
                witness.content_types.append(self.headers.get("Content-Type", ""))
                json.loads(body)  # one JSON document per request
                with copy.open("ab") as handle:
                    handle.write(body + b"\n")
            self.send_response(witness.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    witness.url = f"http://127.0.0.1:{server.server_address[1]}/witness"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield witness
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
