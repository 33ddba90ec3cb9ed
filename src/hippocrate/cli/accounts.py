"""``hippocrate accounts``: bootstrap the first administrator, four-eyes approvals,
list accounts.

``create-admin`` is how a real deployment gets its first administrator (the admin API
needs one to exist), and only its first: once an administrator exists, every new staff
account (practitioner, support, dpo, administrator) is asked by an administrator
(``POST /api/v1/admin/practitioners`` or ``/admin/staff``) and approved by another
one, or, while there is a single administrator, by an operator here (``approve``).
The bootstrap account has no password: the command prints a single-use setup token on
the terminal of the operator who runs it, which the operator hands over in person or
by another channel than the account's email; its holder chooses a password with it and
enrols TOTP at their first sign-in. That is the one setup token ever shown to a
person other than the account's owner, and it is safe to show: whoever runs this
command on the server already holds the database and the keys, and a fresh deployment
may have no mail delivery yet. The operator never knows the password.

``approvals``, ``approve`` and ``refuse`` let an operator (the system user running the
command, as for ``guard release``) decide the requests administrators made: the
operator is "someone else" than the requesting administrator, and is recorded as the
decider. A setup token of an approved recovery or new staff account is emailed to the
account's own address, never printed.

``list`` shows metadata only (id, role, status, second factor, dates): like support,
the command opens nothing sealed, so no email or name is ever printed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import typer
from sqlalchemy import func, select

from hippocrate.access import policy
from hippocrate.admin import service as approvals
from hippocrate.cli.context import (
    fail,
    operator_principal,
    operator_work,
    platform_work,
    runtime,
)
from hippocrate.errors import HippocrateError
from hippocrate.identity import events, service
from hippocrate.identity.errors import AccountActionRefused, IdentityError
from hippocrate.identity.models import Account, AccountStatus, Role
from hippocrate.identity.schemas import AccountMetadata
from hippocrate.tags import Purpose, Tag

app = typer.Typer(help="Accounts: bootstrap an administrator, list metadata.", no_args_is_help=True)


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., "--email", help="The administrator's email address."),
) -> None:
    """Create the first administrator account, without a password; print its setup
    token. Refused once an administrator exists (ask one for a new administrator, and
    approve it with ``approve``)."""
    now = datetime.now(UTC)
    with runtime() as rt:
        try:
            with platform_work(rt, Purpose.SETUP) as session:
                account = service.create_staff_account(
                    session=session, role=Role.ADMIN, email=email, now=now
                )
                others = session.scalar(
                    select(func.count())
                    .select_from(Account)
                    .where(
                        Account.role == Role.ADMIN,
                        Account.status != AccountStatus.DELETED,
                        Account.id != account.id,
                    )
                )
                if others:
                    raise AccountActionRefused(
                        "an administrator exists already: a new one is asked by an "
                        "administrator (POST /api/v1/admin/staff, role admin) and approved "
                        "by another, or by an operator with 'hippocrate accounts approve'"
                    )
                token, expires = service.issue_setup_token(
                    session=session, account=account, now=now
                )
                events.record(session, Tag.ACCOUNT_ADMIN_CREATED, account=account, now=now)
                account_id = account.id
        except IdentityError as exc:
            typer.echo(f"hippocrate: error: {exc}", err=True)
            raise typer.Exit(1) from None
        api = f"{rt.settings.public_url.rstrip('/')}/api/v1"
    typer.echo(f"admin account {account_id} created, without a password")
    typer.echo(f"setup token (single use, valid until {expires:%Y-%m-%d %H:%M} UTC):")
    typer.echo(f"  {token}")
    typer.echo(
        "Hand it to the administrator in person or by another channel than their email.\n"
        "With it, they:\n"
        "  1. choose a password:\n"
        f"     curl -s -X POST {api}/auth/password-reset/complete "
        "-H 'Content-Type: application/json' \\\n"
        f'          -d \'{{"token": "{token}", "password": "NEW_PASSWORD"}}\'\n'
        f"  2. sign in (POST {api}/auth/login): the answer says mfa_setup_required and\n"
        "     carries a token that can only enrol a second factor;\n"
        f"  3. enrol TOTP with that token: POST {api}/me/totp (secret and otpauth:// URI\n"
        f"     for the authenticator app), then POST {api}/me/totp/confirm "
        '{"code": "123456"}\n'
        "     with a code from the app: recovery codes (shown once) and a full session."
    )


@app.command("list")
def list_accounts(
    role: Role | None = typer.Option(None, "--role", help="Only accounts of this role."),
    status: AccountStatus | None = typer.Option(None, "--status", help="Only this status."),
) -> None:
    """List accounts, oldest first: id, role, status, second factor, creation and last
    sign-in dates (never an email or a name)."""
    now = datetime.now(UTC)
    with runtime() as rt, platform_work(rt, Purpose.OPERATIONS) as session:
        rows = [
            AccountMetadata.of(account, now=now)
            for account in session.scalars(policy.accounts_metadata(role=role, status=status))
        ]
    typer.echo(f"{'id':36}  {'role':12}  {'status':8}  {'mfa':3}  {'created':16}  last sign-in")
    for row in rows:
        last = f"{row.last_login_at:%Y-%m-%d %H:%M}" if row.last_login_at else "never"
        locked = "  (locked)" if row.locked else ""
        typer.echo(
            f"{row.id!s:36}  {row.role.value:12}  {row.status.value:8}  "
            f"{'yes' if row.mfa_enabled else 'no':3}  {row.created_at:%Y-%m-%d %H:%M}  "
            f"{last}{locked}"
        )
    typer.echo(f"{len(rows)} accounts")


@app.command("approvals")
def list_approvals() -> None:
    """List the requests waiting for a second administrator (or an operator)."""
    now = datetime.now(UTC)
    with runtime() as rt, platform_work(rt, Purpose.OPERATIONS) as session:
        rows = list(session.scalars(approvals.pending_statement(session=session, now=now)))
        details = approvals.creation_details(session, rows)
        lines = [
            f"{r.id!s:36}  {_what(r.action.value, details.get(r.target_id)):30}  "
            f"{r.target_id!s:36}  {r.requested_by!s:36}  {r.expires_at:%Y-%m-%d %H:%M}"
            for r in rows
        ]
    typer.echo(f"{'id':36}  {'action':30}  {'account':36}  {'requested by':36}  expires")
    for line in lines:
        typer.echo(line)
    typer.echo(f"{len(lines)} pending")


def _what(action: str, details: tuple[Role, str | None] | None) -> str:
    """The action, and for a creation the new account's role (and specialty)."""
    if details is None:
        return action
    role, specialty = details
    return f"{action} {role.value}" + (f" {specialty}" if specialty else "")


@app.command("approve")
def approve(request_id: uuid.UUID) -> None:
    """Approve an administrator's request as the operator: it is executed now, once."""
    _decide(request_id, approve=True)


@app.command("refuse")
def refuse(request_id: uuid.UUID) -> None:
    """Refuse an administrator's request: it is never executed."""
    _decide(request_id, approve=False)


def _decide(request_id: uuid.UUID, *, approve: bool) -> None:
    principal = operator_principal()
    now = datetime.now(UTC)
    with runtime() as rt:
        assert rt.guard is not None
        try:
            with operator_work(rt, principal) as session:
                if approve:
                    decided = approvals.approve(
                        session=session,
                        settings=rt.settings,
                        guard=rt.guard,
                        actor=principal,
                        request_id=request_id,
                        now=now,
                    )
                else:
                    decided = approvals.refuse(
                        session=session,
                        settings=rt.settings,
                        actor=principal,
                        request_id=request_id,
                        now=now,
                    )
                action, target = decided.request.action.value, decided.request.target_id
        except HippocrateError as exc:
            raise fail(str(exc)) from None
    verb = "approved and executed" if approve else "refused"
    typer.echo(f"request {request_id} ({action} of {target}) {verb}")
