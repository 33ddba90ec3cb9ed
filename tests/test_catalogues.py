"""The catalogues follow the code: every message marked in the source has its French
translation, with the same named values; no catalogue keeps a message the code no
longer has; and no message a caller can read is left unmarked (it would never reach
the catalogues, and be answered in English to a French request).

When this fails after a change of messages: ``make catalogues``, then translate the
empty ``msgstr`` of src/hippocrate/locales/fr/LC_MESSAGES/messages.po.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import hippocrate
from hippocrate.errors import HippocrateError
from hippocrate.i18n import LOCALES, SUPPORTED, gettext, render

SOURCE = Path(hippocrate.__file__).parent

# Files whose messages are not marked yet: their refusals are answered in English
# whatever the language asked (the fallback). Each is owned by work in progress and
# marked when that lands; remove a line once its file is marked.
NOT_MARKED_YET = (
    "interop/importer.py",  # the import's report lines: a file for the operator, English
    "vault/",  # the vault's errors are answered by api/problems.py, never shown as such
    "cli/",  # command-line output, not problem details: stays English
)


def _extracted() -> set[str]:
    return {
        message
        for _, _, message, _, _ in extract_from_dir(
            SOURCE,
            method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
            keywords={"_n": None, "_": None},
        )
        if isinstance(message, str)
    }


def _catalogue(language: str) -> Catalog:
    with (LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=language)


def _fields(text: str) -> list[tuple[str, str | None, str | None]]:
    return sorted(
        (name, conversion, spec)
        for _, name, spec, conversion in string.Formatter().parse(text)
        if name is not None
    )


def test_every_marked_message_has_its_french_translation() -> None:
    extracted = _extracted()
    assert len(extracted) > 150  # the extractor found the marks
    french = _catalogue("fr")
    translated = {m.id for m in french if m.id and m.string and not m.fuzzy}
    assert sorted(extracted - translated) == [], "run make catalogues and translate these"


@pytest.mark.parametrize("language", SUPPORTED)
def test_no_catalogue_keeps_a_message_the_code_no_longer_has(language: str) -> None:
    extracted = _extracted()
    kept = {m.id for m in _catalogue(language) if m.id}
    assert sorted(kept - extracted) == [], "run make catalogues"
    assert not list(_catalogue(language).obsolete)


def test_english_is_the_identity() -> None:
    assert [m.id for m in _catalogue("en") if m.id and m.string] == []


def test_a_translation_has_the_same_values_as_its_message() -> None:
    wrong = [
        (m.id, m.string)
        for m in _catalogue("fr")
        if m.id and isinstance(m.id, str) and _fields(m.id) != _fields(str(m.string))
    ]
    assert wrong == []


def test_a_translation_with_the_wrong_values_is_not_used() -> None:
    # The guarantee the previous test backs: a broken catalogue answers English, not 500.
    template = "no consultation is waiting in the {specialty} queue"
    assert render(template, {"specialty": "dermatology"}, "fr").endswith("dermatology")
    assert render(template, {}, "fr") == gettext(template, "fr")


def _error_classes() -> list[type[HippocrateError]]:
    # Every module, so that every error class is defined (some only the CLI imports).
    for module in pkgutil.walk_packages(hippocrate.__path__, "hippocrate."):
        if ".migrations." not in module.name + ".":
            importlib.import_module(module.name)
    found: list[type[HippocrateError]] = []
    pending: list[type[HippocrateError]] = [HippocrateError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("hippocrate."):  # not the tests' own errors
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_title_is_translated() -> None:
    extracted = _extracted()
    untranslated = [
        (cls.__module__, cls.__name__, cls.title)
        for cls in _error_classes()
        if cls.title not in extracted
        and not any(
            cls.__module__.startswith(
                "hippocrate." + part.rstrip("/").removesuffix(".py").replace("/", ".")
            )
            for part in NOT_MARKED_YET
        )
    ]
    assert untranslated == []


# -- nothing a caller reads is left unmarked -----------------------------------------------


# Errors whose first argument is not shown to the caller: the guard's reason for a
# containment goes to the trail; the caller reads the fixed message of ``Contained``.
NOT_A_MESSAGE = frozenset({"Contained"})


def _error_names() -> set[str]:
    return ({cls.__name__ for cls in _error_classes()} | {"Message"}) - NOT_A_MESSAGE


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(node.value)
    )


def _unmarked(path: Path, errors: set[str], words: frozenset[str] = frozenset()) -> list[str]:
    """Calls in ``path`` that give an error (or a ``Message``) a literal message not
    marked with ``_n``; a literal among ``words`` (a vocabulary word marked where it is
    defined, such as a ``NotFound`` kind) is marked already."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name == "_n":
            if len(node.args) != 1 or not (
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
            ):
                found.append(f"{path.name}:{node.lineno}: _n takes one literal string")
            continue
        if name in errors or name in {"__init__", "problem"}:
            # The message (an attachment refusal's reason, a problem's title and detail)
            # must be marked.
            for argument in node.args[:3]:
                if _is_text(argument) and not (
                    isinstance(argument, ast.Constant) and argument.value in words
                ):
                    found.append(f"{path.name}:{node.lineno}: {ast.unparse(argument)[:60]}")
    return found


def test_no_refusal_carries_an_unmarked_message() -> None:
    errors = _error_names()
    words = frozenset(_extracted())
    unmarked: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        relative = path.relative_to(SOURCE).as_posix()
        if relative.startswith(NOT_MARKED_YET) or relative.startswith("migrations/"):
            continue
        unmarked += [f"{relative}: {line}" for line in _unmarked(path, errors, words)]
    assert unmarked == [], "wrap these messages in _n (from hippocrate.i18n)"


def test_the_unmarked_check_finds_an_unmarked_message(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "raise QueueEmpty('x')\n"
        "raise Forbidden(f'this is {x}')\n"
        "raise Forbidden(_n('marked'))\n"
        "_n(f'not a literal {x}')\n"
    )
    assert len(_unmarked(sample, {"QueueEmpty", "Forbidden"})) == 3
