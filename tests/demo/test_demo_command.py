"""``hippocrate demo`` on a fresh folder, as ``make demo`` runs it: the server comes up
with a living platform (seeded accounts), and a seeded practitioner signs in with the
password and TOTP secret from the credentials file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.cli.test_cli import HIPPOCRATE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_demo_serves_a_seeded_platform(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPPOCRATE_")}
    env["HIPPOCRATE_DATA_DIR"] = str(tmp_path / "var")
    log = (tmp_path / "demo.log").open("w")
    server = subprocess.Popen(
        [str(HIPPOCRATE), "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail("the demo server did not come up in 120 s: " + _log(tmp_path))
        credentials = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
        assert credentials["patients"]
        assert credentials["practitioners"]
        assert credentials["staff"]
        doctor = credentials["practitioners"][0]
        login = httpx.post(
            f"{base}/auth/login",
            json={"email": doctor["email"], "password": doctor["password"]},
            timeout=10,
        ).json()
        assert login["mfa_required"] is True
        code = pyotp.TOTP(doctor["totp_secret"]).now()
        done = httpx.post(
            f"{base}/auth/mfa",
            json={"code": code},
            headers={"Authorization": f"Bearer {login['token']}"},
            timeout=10,
        )
        assert done.status_code == 200, done.text
        token = done.json()["token"]
        listing = httpx.get(
            f"{base}/consultations", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert listing.status_code == 200
        assert listing.json()["total"] >= 1, _log(tmp_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _log(folder: Path) -> str:
    return (folder / "demo.log").read_text()[-2000:]
