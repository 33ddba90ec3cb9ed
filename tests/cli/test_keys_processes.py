"""Root key versions agree across processes: ``hippocrate keys rotate`` and
``hippocrate keys retire`` run beside a running server, on one data folder and one
database, as an operator runs them.

The server is ``hippocrate serve`` in a process of its own; patients register, confirm
their address from the outbox and sign in through its API, the real way. Its key cache
is off (``HIPPOCRATE_KEY_CACHE_TTL=0``): with the default 60 s cache a stale key
provider would only show once the cache expired, and every read here must unwrap.
What is asserted is what a user and an operator see: sign-in answers, the patient's
record, and ``hippocrate keys status``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from hippocrate.config import Settings
from tests.cli.test_cli import HIPPOCRATE, Cli, assert_one_line_error
from tests.conftest import _fresh_postgres
from tests.identity.helpers import patient_data

PASSWORD = "velvet-otter-marches-north"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """An initialised deployment: a data folder, and the database on either backend."""
    env = {"HIPPOCRATE_KEY_CACHE_TTL": "0", "HIPPOCRATE_AUDIT_CHECKPOINT_SECONDS": "0"}
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
        _fresh_postgres(url).dispose()
        env["HIPPOCRATE_DATABASE_URL"] = url
    deployment = Cli(tmp_path, env)
    deployment.ok("init")
    return deployment


@dataclass
class Server:
    base: str
    cli: Cli
    process: subprocess.Popen[bytes] | None = None

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.base}/api/v1", timeout=30)


@contextmanager
def serving(cli: Cli, **changes: str) -> Iterator[Server]:
    """``hippocrate serve`` on a free loopback port (``changes``: more environment),
    stopped on exit."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env = {**inherited, "HIPPOCRATE_DATA_DIR": str(cli.data_dir), **cli.env, **changes}
    # Each commit chains its own events, so that the trail reads whole as soon as the
    # server has answered (tests/audit/test_chainer.py runs servers with their chainer).
    env.setdefault("HIPPOCRATE_AUDIT_CHAIN_SECONDS", "0")
    log_path = cli.home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(HIPPOCRATE), "serve", "--port", str(port)],
            cwd=cli.home,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail("the server stopped at start:\n" + log_path.read_text()[-2000:])
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the server did not come up in 60 s:\n" + log_path.read_text()[-2000:])
            time.sleep(0.1)
        yield Server(base, cli, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- what a patient does ----------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    email: str
    family_name: str


def _link_token(outbox: Path, address: str) -> str:
    for path in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        if message["To"] != address:
            continue
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        match = re.search(r"[?#]token=([A-Za-z0-9_\-]+)", body.get_content())  # type: ignore[attr-defined]
        if match:
            return match.group(1)
    pytest.fail(f"no link was sent to {address}")


def register(server: Server, name: str) -> Patient:
    """Register through the API and confirm the address with the link sent to it."""
    data = patient_data(email=f"{name}@example.org").model_dump(mode="json")
    with server.http() as http:
        answer = http.post("/auth/register", json={**data, "password": PASSWORD})
        assert answer.status_code == 202, answer.text
        outbox = Settings(data_dir=server.cli.data_dir).outbox_dir
        token = _link_token(outbox, data["email"])
        confirmed = http.post("/auth/verify-email", json={"token": token})
        assert confirmed.status_code == 204, confirmed.text
    return Patient(data["email"], data["family_name"])


def sign_in_and_read(server: Server, patient: Patient) -> tuple[int, int, str | None]:
    """Sign in, then open one's own record: (sign-in status, record status, family name)."""
    with server.http() as http:
        login = http.post("/auth/login", json={"email": patient.email, "password": PASSWORD})
        if login.status_code != 200:
            return login.status_code, 0, None
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        record = http.get("/patients/me", headers=headers)
        name = record.json().get("family_name") if record.status_code == 200 else None
        return 200, record.status_code, name


def key_status(cli: Cli) -> tuple[list[int], dict[int, int]]:
    """``keys status``: the root key versions held, and how many data keys each wraps."""
    shown = cli.ok("keys", "status")
    held = re.search(r"root key versions: ([\d, ]+)", shown)
    assert held is not None, shown
    wrapped = re.findall(r"data keys wrapped by root version (\d+): (\d+)", shown)
    return [int(v) for v in held.group(1).split(",")], {int(v): int(n) for v, n in wrapped}


# -- the tests --------------------------------------------------------------------------


def test_rotate_and_retire_beside_a_running_server(cli: Cli) -> None:
    with serving(cli) as server:
        before = register(server, "avant.rotation")
        assert sign_in_and_read(server, before) == (200, 200, before.family_name)

        rotated = cli.ok("keys", "rotate")
        assert "rotation to root key version 2 finished" in rotated

        # The server was started under version 1 alone and never restarted.
        assert sign_in_and_read(server, before) == (200, 200, before.family_name)
        after = register(server, "apres.rotation")
        assert sign_in_and_read(server, after) == (200, 200, after.family_name)
        # The patient registered after the rotation got a data key under version 2:
        # nothing at all is left under version 1.
        versions, wrapped = key_status(cli)
        assert (versions, set(wrapped)) == ([1, 2], {2})

        retired = cli.ok("keys", "retire", "1")
        assert "root key version 1 retired; root key versions left: 2" in retired
        for patient in (before, after):
            assert sign_in_and_read(server, patient) == (200, 200, patient.family_name)
        newest = register(server, "apres.retrait")
        assert sign_in_and_read(server, newest) == (200, 200, newest.family_name)
        versions, wrapped = key_status(cli)
        assert (versions, set(wrapped)) == ([2], {2})


def test_retire_refuses_what_would_lose_data(cli: Cli) -> None:
    # The newest version, which every new data key is wrapped under.
    assert_one_line_error(cli.run("keys", "retire", "1"), "version 1 is the current")

    # A rotation killed before it rewrapped anything: version 2 exists, the data keys
    # (init's honeytoken patients) are all still under version 1.
    killed = cli.run("keys", "rotate", HIPPOCRATE_FAULT_ROTATION_KILL_AFTER="1")
    assert killed.code != 0
    assert_one_line_error(
        cli.run("keys", "retire", "1"), "unfinished rotation", "hippocrate keys rotate"
    )
    versions, wrapped = key_status(cli)
    assert (versions, set(wrapped)) == ([1, 2], {1})

    assert "resumed and finished" in cli.ok("keys", "rotate")
    assert "root key versions left: 2" in cli.ok("keys", "retire", "1")
    assert_one_line_error(cli.run("keys", "retire", "2"), "version 2 is the current")


def test_init_keeps_the_signing_key_outside_the_data_folder(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "audit-signing.key"
    deployment = Cli(tmp_path / "home", {"HIPPOCRATE_AUDIT_SIGNING_KEY_FILE": str(outside)})
    (tmp_path / "home").mkdir()
    deployment.ok("init")

    assert outside.is_file()
    assert outside.stat().st_mode & 0o777 == 0o600
    assert '"audit"' not in deployment.key_file.read_text()
    assert not any("audit" in p.name and p.suffix == ".key" for p in deployment.data_dir.rglob("*"))
