"""Languages: French by default, English on request, from Babel catalogues.

Every message a caller can read (a problem's ``title`` and ``detail``, a questionnaire
label) is written in English in the code and marked with :func:`_n`, which returns it
unchanged; Babel's extractor finds the marked strings (``make catalogues``). The
catalogues are ``locales/<language>/LC_MESSAGES/messages.po``: ``fr`` translates every
message, ``en`` is the identity (its entries stay empty, so the English text is used).

A message with values is a template with named fields (``"at most {limit} files"``),
translated first and formatted after, so a translation may move the values. The values
are what the code put there (limits, codes, dates), never anything a patient wrote.

The ``.po`` files are the only form of the catalogues in the repository and the package:
the first use of a language reads its ``.po`` and compiles it in memory (10 to 24 ms
for the French one, once per process: docs/ARCHITECTURE.md, Languages), so neither
``make install`` nor the wheel's build has a step to forget and no compiled artefact
can drift from its source.

Guarantees:
    - A message without a translation (not marked yet, or marked after the catalogue
      was last updated) is answered in English, never refused or emptied.
    - A translation whose fields do not match its message's is not used: the English
      text is formatted instead, so a catalogue mistake cannot turn an answer into a 500
      (the catalogue test refuses such a translation first).
    - :func:`negotiate` always returns one of :data:`SUPPORTED`; an absent, unparsable or
      unmatched ``Accept-Language`` gives :data:`DEFAULT`.

The web pages (issue 11) use the same objects: :func:`translations` returns a
:class:`babel.support.Translations`, a :class:`gettext.GNUTranslations`, which Jinja2's
i18n extension takes as it is (``env.install_gettext_translations(translations(lang),
newstyle=True)``); templates then write ``{{ _("...") }}`` with the same catalogues
(extract them with the Jinja2 extractor beside the Python one).

This module imports nothing of Hippocrate: the base error and every domain may use it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from io import BytesIO
from pathlib import Path
from typing import Final

from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

SUPPORTED: Final = ("fr", "en")
"""The languages the API answers in, the default first."""

DEFAULT: Final = "fr"

LOCALES: Final = Path(__file__).parent / "locales"
DOMAIN: Final = "messages"

_MAX_LANGUAGE_RANGES = 32
"""Ranges of ``Accept-Language`` looked at: more says nothing useful (bounded work)."""


def _n(message: str) -> str:
    """Mark ``message`` for the catalogues and return it unchanged (``gettext_noop``).

    The English text stays what the code carries (``str(exc)``, logs, the CLI); it is
    translated where it is answered, with the language of the request.
    """
    return message


@functools.cache
def translations(language: str) -> Translations:
    """The catalogue of ``language`` (one of :data:`SUPPORTED`), read and compiled once."""
    if language not in SUPPORTED:
        raise ValueError(f"unsupported language: {language!r}")
    path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)  # fuzzy entries are left out, as msgfmt does
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def gettext(message: str, language: str) -> str:
    """``message`` in ``language``; the message itself when it has no translation."""
    if not message:
        return message  # the empty msgid is the catalogue's header, never a message
    return translations(language).gettext(message)


class Message(str):
    """A marked message with its values: the English text (it *is* that ``str``, for
    logs, comparisons and the CLI) that can also be rendered in another language.

    For a message built in one place and placed in another (a reason inside an error's
    message): a :class:`Message` among the values of :func:`render` is rendered in the
    same language before it is placed.
    """

    template: str
    params: Mapping[str, object]

    def __new__(cls, template: str, /, **params: object) -> Message:
        text = template.format(**params) if params else template
        message = super().__new__(cls, text)
        message.template = template
        message.params = params
        return message

    def in_language(self, language: str) -> str:
        """The message in ``language`` (English when it has no translation)."""
        return render(self.template, self.params, language)


def term(word: str) -> Message:
    """A word placed in a message (a status, a kind of object, an action), translated
    with the message. The vocabulary is marked with :func:`_n` where it is defined, so
    the catalogues hold it; an unmarked word stays English."""
    return Message(word)


def render(template: str, params: Mapping[str, object], language: str) -> str:
    """``template`` translated into ``language``, then formatted with ``params``.

    Without ``params`` the template is not formatted (a brace in it stays a brace), as
    :class:`Message` builds its English text. A :class:`Message` among the values is
    rendered in ``language`` first.
    """
    text = gettext(template, language)
    if not params:
        return text
    values = {
        name: value.in_language(language) if isinstance(value, Message) else value
        for name, value in params.items()
    }
    try:
        return text.format(**values)
    except (KeyError, IndexError, ValueError):
        return template.format(**values)


def negotiate(accept_language: str | None) -> str:
    """The language to answer in for an ``Accept-Language`` header (RFC 9110 §12.5.4).

    Ranges are taken by decreasing quality (in their order for equal ones); a range
    with ``q=0`` is refused, ``*`` and an unknown language match nothing, a regional
    range (``en-GB``) matches its language. Nothing matched, or no header: :data:`DEFAULT`.
    """
    if not accept_language:
        return DEFAULT
    ranges: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept_language.split(",")[:_MAX_LANGUAGE_RANGES]):
        tag, _, parameters = item.strip().partition(";")
        tag = tag.strip().lower()
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # an unreadable weight: not a preference
        if tag and tag != "*" and 0.0 < quality <= 1.0:
            ranges.append((-quality, position, tag))
    preferred = [tag for _, _, tag in sorted(ranges)]
    chosen = negotiate_locale(preferred, list(SUPPORTED), sep="-", aliases={})
    return chosen if chosen in SUPPORTED else DEFAULT
