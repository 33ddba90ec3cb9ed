"""The public page "Is this message really from Hippocrate?": the same check as the API,
as a form that needs no JavaScript, in French by default and English on request; it
shows nothing of the recipient, escapes what was pasted, and is throttled."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest

from hippocrate.notify.service import new_code
from tests.conftest import Store
from tests.identity.conftest import Env
from tests.notify.test_public_check import _code_of, _registered, _whole
from tests.web.conftest import running_pages, submit


@pytest.fixture
def env(store: Store, tmp_path: Path) -> Iterator[Env]:
    yield from running_pages(store, tmp_path, message_checks_per_client=6)


def test_the_page_finds_a_genuine_message_and_names_nobody(env: Env) -> None:
    body, message = _registered(env)
    french = {"Accept-Language": "fr"}
    page = env.client.get("/verifier", headers=french)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Ce message vient-il vraiment d'Hippocrate ?" in html.unescape(page.text)
    assert '<form method="post" action="/verifier"' in page.text
    assert "<script>" not in page.text  # only the vendored script, from its file

    found = submit(env.client, "/verifier", {"text": _whole(message)}, headers=french)
    assert found.status_code == 200, found.text
    assert "Envoyé par Hippocrate" in found.text
    for private in (body["email"], body["given_names"], body["family_name"]):
        assert private not in found.text

    made_up = submit(env.client, "/verifier", {"text": new_code()}, headers=french)
    assert "Pas envoyé par Hippocrate" in made_up.text

    english = submit(env.client, "/verifier", {"text": _code_of(message)})
    assert "Sent by Hippocrate" in english.text  # the suite's clients ask for English


def test_what_was_pasted_comes_back_escaped_and_nothing_to_check_is_said(env: Env) -> None:
    pasted = "<script>alert(1)</script> aucun code ici"
    answer = submit(env.client, "/verifier", {"text": pasted})
    assert answer.status_code == 422
    assert "<script>alert(1)</script>" not in answer.text
    assert "&lt;script&gt;" in answer.text
    assert "Nothing to check" in answer.text


def test_the_page_is_throttled_like_the_api(env: Env) -> None:
    statuses = [submit(env.client, "/verifier", {"text": new_code()}).status_code for _ in range(8)]
    assert statuses[:6] == [200] * 6
    assert 429 in statuses[6:]
