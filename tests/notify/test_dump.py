"""A copy of the database does not give away the verification codes: a thief who has it
cannot write a fake email whose code the recipient would find in the app."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from hippocrate.identity.models import Account
from hippocrate.notify.models import OutboundEmail
from hippocrate.notify.service import send
from hippocrate.notify.templates import names, template_for, token_link
from tests.conftest import Store
from tests.notify.conftest import NOW, PUBLIC_URL, AccountFactory, settings_for
from tests.patients.test_dump import dump
from tests.plaintext import find_in


def test_codes_are_not_readable_in_the_database_file(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory
) -> None:
    settings = settings_for(tmp_path, sqlite_store)
    account = make_account("dominique.bernard@example.org")
    codes: list[str] = []
    with sqlite_store.sessions.begin() as session:
        me = session.get(Account, account.id)
        assert me is not None
        for template in names() * 3:
            link = None
            if template_for(template).link_path is not None:
                link = {
                    "link": token_link(template=template, token="t" * 43, public_url=PUBLIC_URL)
                }
            record = send(
                session=session,
                settings=settings,
                account=me,
                template=template,
                now=NOW,
                links=link,
            )
            assert record.verification_code is not None
            codes.append(record.verification_code)

    # The codes are there, and readable through the vault...
    sqlite_store.sessions.vault.forget_all()
    with sqlite_store.sessions() as session:
        records = session.scalars(select(OutboundEmail).order_by(OutboundEmail.created_at))
        assert sorted(r.verification_code or "" for r in records) == sorted(codes)

    # ...and nowhere in the copy, with or without the dash.
    copied = dump(sqlite_store)
    assert b"new_message" in copied  # the copy is real: the plaintext metadata is in it
    spellings = {"code": {c for code in codes for c in (code, code.replace("-", ""))}}
    assert find_in(copied, spellings) == []
    assert find_in(copied, {"email": {"dominique.bernard@example.org", "dominique"}}) == []


def test_the_search_would_find_a_code_written_in_the_clear(
    sqlite_store: Store, tmp_path: Path, make_account: AccountFactory
) -> None:
    """The check above can fail: a code stored as plain text is found."""
    from sqlalchemy import update

    account = make_account()
    with sqlite_store.sessions.begin() as session:
        me = session.get(Account, account.id)
        assert me is not None
        record = send(
            session=session,
            settings=settings_for(tmp_path, sqlite_store),
            account=me,
            template="new_message",
            now=NOW,
        )
        code = record.verification_code
        assert code is not None
    with sqlite_store.sessions.begin() as session:
        session.execute(
            update(OutboundEmail)
            .where(OutboundEmail.id == record.id)
            .values(code_sealed=code.encode())
            .execution_options(synchronize_session=False)
        )

    assert find_in(dump(sqlite_store), {"code": {code}}) == [f"code: {code!r}"]
