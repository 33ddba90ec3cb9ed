"""``hippocrate accounts``: bootstrap the first administrator, list accounts.

``create-admin`` is how a real deployment gets its first administrator (the admin API
needs one to exist). As with ``POST /admin/staff``, the account has no password: the
command prints a single-use setup token, which the operator hands over in person or by
another channel than the account's email; its holder chooses a password with it and
enrols TOTP at their first sign-in. The operator never knows the password.

``list`` shows metadata only (id, role, status, second factor, dates): like support,
the command opens nothing sealed, so no email or name is ever printed.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from hippocrate.access import policy
from hippocrate.cli.context import platform_work, runtime
from hippocrate.identity import events, service
from hippocrate.identity.errors import IdentityError
from hippocrate.identity.models import AccountStatus, Role
from hippocrate.identity.schemas import AccountMetadata
from hippocrate.tags import Purpose, Tag

app = typer.Typer(help="Accounts: bootstrap an administrator, list metadata.", no_args_is_help=True)


@app.command("create-admin")
def create_admin(
    email: str = typer.Option(..., "--email", help="The administrator's email address."),
) -> None:
    """Create an administrator account without a password; print its setup token."""
    now = datetime.now(UTC)
    with runtime() as rt:
        try:
            with platform_work(rt, Purpose.SETUP) as session:
                account = service.create_staff_account(
                    session=session, role=Role.ADMIN, email=email, now=now
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
