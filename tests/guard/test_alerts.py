"""Containment alerts reach the configured webhook (a real HTTP server on loopback)
and the security log, and a failing webhook never breaks containment."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from hippocrate.audit.recorder import Actor
from hippocrate.config import Settings
from hippocrate.guard.service import Guard
from hippocrate.guard.state import LocalState
from hippocrate.vault import Vault


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep the test output quiet
        return


def test_the_webhook_and_the_log_are_alerted(
    vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    try:
        url = f"http://127.0.0.1:{server.server_port}/alerts"
        guard = Guard(Settings(guard_alert_webhook=url), vault, LocalState())
        actor = Actor(role="practitioner", account_id=uuid.uuid4(), request_id="r1")
        with caplog.at_level(logging.WARNING, logger="hippocrate.security"):
            guard.alert(actor, "breadth: 21 patients in 3600 s", datetime.now(UTC))
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Hook.received) == 1
    alert = _Hook.received[0]
    assert alert["event"] == "hippocrate.containment"
    assert alert["account"] == str(actor.account_id)
    assert str(alert["reason"]).startswith("breadth")


def test_an_unreachable_webhook_is_logged_not_raised(
    vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    guard = Guard(Settings(guard_alert_webhook="http://127.0.0.1:1/alerts"), vault, LocalState())
    actor = Actor(role="admin", account_id=uuid.uuid4())
    with caplog.at_level(logging.WARNING, logger="hippocrate.security"):
        guard.alert(actor, "honeytoken", datetime.now(UTC))
    assert "alert webhook failed" in caplog.text
