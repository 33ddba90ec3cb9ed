"""Every template, rendered: no health data can get in, and the HTML is inert.

The strongest check: two renders with different codes, links and platform addresses
differ only in those three. A template has no other input, so no caller can put a
name, a subject, a diagnosis or a message in an email.
"""

from __future__ import annotations

import html
import inspect
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hippocrate.notify.service import CODE_ALPHABET, new_code
from hippocrate.notify.templates import (
    TEMPLATES,
    Rendered,
    UnknownTemplate,
    UnsafeLink,
    names,
    render,
    token_link,
)
from hippocrate.patients.synthetic import SyntheticPatients
from tests.plaintext import find_in, spellings_of_patient

LINK_TEMPLATES = {"verify_email", "reset_password", "invitation"}
EXPECTED = {
    "verify_email",
    "reset_password",
    "new_message",
    "consultation_taken",
    "report_ready",
    "account_locked",
    "second_factor_locked",
    "security_alert",
    "account_deleted",
    "approval_requested",
    "approval_decided",
    "break_glass_opened",
    "invitation",
    "consultation_cancelled",
    "patient_replied",
    "recovery_code_used",
    "account_suspended",
}

# What a phishing email built from the MédecinDirect data would say, and what a careless
# template could leak: conditions, treatments, specialties, practitioner and patient
# identity, dates.
HEALTH_SENTINELS = [
    "diabète",
    "diabete",
    "VIH",
    "séropositi",
    "cancer",
    "tumeur",
    "dépression",
    "anxiété",
    "grossesse",
    "IVG",
    "contraception",
    "ordonnance",
    "prescription",
    "diagnostic",
    "symptôme",
    "douleur",
    "thoracique",
    "allergie",
    "antidépresseur",
    "insuline",
    "psychiatr",
    "cardiolog",
    "gynécolog",
    "dermatolog",
    "Docteur",
    "Professeur",
    "né le",
    "née le",
]
# Titles, as whole words and case-sensitive ("Pr" starts "pris en charge").
TITLES = ["Dr", "Pr", "Mme", "M."]


def _sentinel_hits(text: str) -> list[str]:
    words = [w for w in HEALTH_SENTINELS if re.search(rf"\b{re.escape(w)}", text, re.IGNORECASE)]
    titles = [t for t in TITLES if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text)]
    return words + titles


def link_for(template: str, token: str, public_url: str) -> str | None:
    if template not in LINK_TEMPLATES:
        return None
    return token_link(template=template, token=token, public_url=public_url)


def rendered(template: str, code: str, token: str, public_url: str) -> Rendered:
    return render(
        template, code=code, link=link_for(template, token, public_url), public_url=public_url
    )


class _Html(HTMLParser):
    """Tags, attributes and visible text of an HTML part."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(markup: str) -> _Html:
    parser = _Html()
    parser.feed(markup)
    parser.close()
    return parser


def test_the_platform_has_every_template_it_needs() -> None:
    assert set(names()) == EXPECTED


def test_render_takes_the_code_the_link_and_the_address_and_nothing_else() -> None:
    parameters = inspect.signature(render).parameters
    assert list(parameters) == ["template", "code", "link", "public_url"]
    for name in EXPECTED:
        with pytest.raises(TypeError):
            render(name, code="K7PX-3QHM", link=None, public_url="https://a.fr", subject="x")  # type: ignore[call-arg]


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_only_the_code_the_link_and_the_address_vary(template: str) -> None:
    first = ("K7PX-3QHM", "A" * 43, "https://hippocrate.example.fr")
    second = ("ZZ22-WW99", "b_-9" * 11, "http://127.0.0.1:8000")
    one, two = rendered(template, *first), rendered(template, *second)

    # Each variable really is printed...
    for (code, token, url), out in ((first, one), (second, two)):
        for part in (out.text, out.html):
            assert code in part
            assert url in part
            assert (token in part) == (template in LINK_TEMPLATES)
    # ...and once they are blanked, the two emails are the same, character for character.
    assert _blanked(one, *first) == _blanked(two, *second)


@given(
    code=st.text(alphabet=CODE_ALPHABET, min_size=8, max_size=8).map(lambda c: f"{c[:4]}-{c[4:]}"),
    token=st.text(alphabet="ABCdef0123_-", min_size=32, max_size=128),
    template=st.sampled_from(sorted(EXPECTED)),
)
def test_only_the_variables_vary_for_any_code_and_token(
    code: str, token: str, template: str
) -> None:
    reference = ("K7PX-3QHM", "A" * 43, "https://hippocrate.example.fr")
    other = (code, token, "https://hippocrate.example.fr")
    assert _blanked(rendered(template, *other), *other) == _blanked(
        rendered(template, *reference), *reference
    )


def _blanked(out: Rendered, code: str, token: str, url: str) -> tuple[str, str, str]:
    def blank(text: str) -> str:
        text = text.replace(token, "\x00TOKEN\x00")
        text = text.replace(url, "\x00URL\x00").replace(html.escape(url), "\x00URL\x00")
        return text.replace(code, "\x00CODE\x00")

    return blank(out.subject), blank(out.text), blank(out.html)


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_no_health_or_identity_data_in_any_template(template: str) -> None:
    out = rendered(template, new_code(), "T" * 43, "https://hippocrate.example.fr")
    visible = parsed(out.html)
    everything = "\n".join([out.subject, out.text, out.html, *visible.text])

    assert _sentinel_hits(everything) == []
    patient = SyntheticPatients(seed=20251203).patient(with_nir=True)
    assert find_in(everything.encode(), spellings_of_patient(patient)) == []
    # No digits but the code's and the address's: no date, phone, NIR or amount.
    for text in (out.subject, out.text, "".join(visible.text)):
        bare = _blanked(
            Rendered(text, "", ""), out_code(out), "T" * 43, "https://hippocrate.example.fr"
        )[0]
        assert not re.search(r"\d", bare), bare


def out_code(out: Rendered) -> str:
    found = re.search(r"Code de vérification : ([A-Z2-9]{4}-[A-Z2-9]{4})", out.text)
    assert found is not None
    return found.group(1)


def test_the_sentinel_check_would_catch_health_data() -> None:
    """The check above can fail: a sentence with a condition and a date is caught."""
    found = _sentinel_hits("Votre résultat : diabète de type 2, Dr Martin, née le 3 mars")
    assert found == ["diabète", "née le", "Dr"]


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_every_email_has_the_same_recognisable_form(template: str) -> None:
    out = rendered(template, "K7PX-3QHM", "A" * 43, "https://hippocrate.example.fr")

    assert out.subject.startswith("Hippocrate : ")
    assert out.text.startswith("Hippocrate\n\nBonjour,\n\n")
    assert "Code de vérification : K7PX-3QHM\n" in out.text
    assert "n'envoie jamais d'information médicale par email" in out.text
    assert "Message automatique" in out.text
    assert '<html lang="fr">' in out.html
    assert f"<title>{out.subject}</title>" in out.html


@pytest.mark.parametrize("template", sorted(EXPECTED))
def test_the_html_part_loads_nothing_and_links_only_to_the_platform(template: str) -> None:
    url = "https://hippocrate.example.fr"
    link = link_for(template, "A" * 43, url)
    out = render(template, code="K7PX-3QHM", link=link, public_url=url)
    page = parsed(out.html)

    # No remote content, no script, no form, no tracking pixel.
    forbidden = {"img", "script", "style", "link", "iframe", "object", "embed", "form", "svg"}
    assert forbidden.isdisjoint(page.tags)
    assert not [a for a in page.attributes if a[1] in {"src", "srcset", "background", "action"}]
    styles = " ".join(value for _, name, value in page.attributes if name == "style")
    assert "url(" not in styles
    assert "@import" not in styles
    # The only hyperlink is the token link, and it shows its own address.
    hrefs = [value for tag, name, value in page.attributes if name == "href"]
    assert hrefs == ([link] if link else [])
    if link:
        assert link.startswith(url + "/")
        assert link in page.text
    # No address but the platform's anywhere in the text.
    for part in (out.text, out.html):
        addresses = re.findall(r"https?://[^\s\"<>]+", part)
        assert addresses
        assert all(a.startswith(url) for a in addresses), addresses


@pytest.mark.parametrize("template", sorted(EXPECTED - LINK_TEMPLATES))
def test_templates_without_a_token_carry_no_link(template: str) -> None:
    out = rendered(template, "K7PX-3QHM", "A" * 43, "https://hippocrate.example.fr")
    assert "<a " not in out.html
    assert "?token=" not in out.text


# -- the link is the platform's own token link, or it is refused -----------------------

URL = "https://hippocrate.example.fr"
TOKEN = "Zx" * 22


@pytest.mark.parametrize(
    "link",
    [
        "https://hippocrate-securite.fr/account/reset-password?token=" + TOKEN,
        "https://hippocrate.example.fr.evil.test/account/reset-password?token=" + TOKEN,
        "https://user@hippocrate.example.fr/account/reset-password?token=" + TOKEN,
        "http://hippocrate.example.fr/account/reset-password?token=" + TOKEN,
        URL + "/account/verify-email?token=" + TOKEN,  # another template's path
        URL + "/account/reset-password?token=" + TOKEN + "&note=diabete",
        URL + "/account/reset-password?token=" + TOKEN + "#diabete",
        URL + "/account/reset-password?token=Votre+diab%C3%A8te+de+type+2+est+confirm%C3%A9",
        URL + "/account/reset-password?token=short",
        URL + "/diabete?token=" + TOKEN,
        "Votre traitement est prêt",
        "",
    ],
)
def test_anything_but_the_token_link_is_refused(link: str) -> None:
    with pytest.raises(UnsafeLink):
        render("reset_password", code="K7PX-3QHM", link=link, public_url=URL)


def test_a_link_templates_needs_its_link_and_the_others_take_none() -> None:
    with pytest.raises(UnsafeLink):
        render("verify_email", code="K7PX-3QHM", link=None, public_url=URL)
    with pytest.raises(UnsafeLink):
        render(
            "new_message",
            code="K7PX-3QHM",
            link=URL + "/account/reset-password?token=" + TOKEN,
            public_url=URL,
        )
    with pytest.raises(UnsafeLink):
        token_link(template="new_message", token=TOKEN, public_url=URL)


def test_token_link_is_the_link_render_accepts() -> None:
    link = token_link(template="verify_email", token=TOKEN, public_url=URL + "/")
    assert link == f"{URL}/account/verify-email?token={TOKEN}"
    assert link in render("verify_email", code="K7PX-3QHM", link=link, public_url=URL).text


@pytest.mark.parametrize(
    "public_url",
    [
        "hippocrate.example.fr",
        "ftp://hippocrate.example.fr",
        "https://u:p@h.fr",
        "https://h.fr/?a=b",
    ],
)
def test_a_public_url_that_cannot_be_printed_safely_is_refused(public_url: str) -> None:
    with pytest.raises(UnsafeLink):
        render("new_message", code="K7PX-3QHM", link=None, public_url=public_url)


def test_an_unknown_template_is_refused() -> None:
    with pytest.raises(UnknownTemplate):
        render("lab_results", code="K7PX-3QHM", link=None, public_url=URL)
    assert "lab_results" not in TEMPLATES
