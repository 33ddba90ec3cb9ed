"""The command line's part in four-eyes approvals: ``create-admin`` bootstraps the first
administrator only; an operator approves (or refuses) what an administrator asked, and
prints no setup token."""

from __future__ import annotations

import re
import uuid
from email import message_from_bytes, policy
from pathlib import Path

from tests.cli.test_cli import Cli, assert_one_line_error
from tests.demo.test_commands import _api_on, _found
from tests.identity.helpers import enrol_totp, fast_password_hashing, new_password

FIRST = "premiere.admin@example.org"
SECOND = "deuxieme.admin@example.org"


def _setup_links_to(cli: Cli, address: str) -> list[str]:
    found = []
    outbox = cli.data_dir.parent / f"{cli.data_dir.name}-outbox"
    for path in sorted(outbox.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == address:
            text = message.get_body(preferencelist=("plain",))
            assert text is not None
            found += re.findall(r"token=([A-Za-z0-9_\-]+)", text.get_content())
    assert outbox.is_dir()
    return found


def test_the_first_admin_only_is_created_at_the_command_line_then_an_operator_approves(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path)
    cli.ok("init")
    out = cli.ok("accounts", "create-admin", "--email", FIRST)
    token = _found(r"setup token \(single use, valid until [^)]*\):\n  (\S+)\n", out)

    second = cli.run("accounts", "create-admin", "--email", SECOND)

    assert_one_line_error(second, "an administrator exists already")
    assert "1 accounts" in cli.ok("accounts", "list", "--role", "admin")

    # The first admin asks for a second one through the API...
    client, runtime = _api_on(cli)
    try:
        with fast_password_hashing(), client:
            password = new_password()
            done = client.post(
                "/api/v1/auth/password-reset/complete",
                json={"token": token, "password": password},
            )
            assert done.status_code == 204, done.text
            answer = client.post(
                "/api/v1/auth/login", json={"email": FIRST, "password": password}
            ).json()
            headers = enrol_totp(client, {"Authorization": f"Bearer {answer['token']}"}).headers
            asked = client.post(
                "/api/v1/admin/staff", headers=headers, json={"email": SECOND, "role": "admin"}
            )
            assert asked.status_code == 202, asked.text
            request_id = asked.json()["id"]
            own = client.post(f"/api/v1/admin/approvals/{request_id}/approve", headers=headers)
            assert own.status_code == 403
    finally:
        runtime.close()

    # ...and, with no other admin yet, an operator approves it at the command line.
    listed = cli.ok("accounts", "approvals")
    assert request_id in listed
    assert "create_staff admin" in listed
    approved = cli.ok("accounts", "approve", request_id)

    assert f"request {request_id} (create_staff of" in approved
    assert "approved and executed" in approved
    [link] = _setup_links_to(cli, SECOND)
    assert link not in approved + listed
    assert re.search(r"admin\s+active", cli.ok("accounts", "list", "--role", "admin"))
    assert "2 accounts" in cli.ok("accounts", "list", "--role", "admin")
    assert_one_line_error(cli.run("accounts", "approve", request_id), "cannot be decided")
    assert_one_line_error(cli.run("accounts", "refuse", str(uuid.uuid4())), "no such approval")
