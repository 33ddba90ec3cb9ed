"""Fail when a sealed model is loaded outside the access policy or an ``unsafe_`` function.

A sealed model is any class deriving, directly or not, from
``hippocrate.db.sealed.SealedModel`` (found by reading the source, not by importing
it). Loading one of its rows hands the caller an object whose sealed attributes can be
opened, so every such query must start from the access policy
(``hippocrate/access/policy.py``, whose ``readable_*`` statements are scoped to a
principal), or sit in a function whose name starts with ``unsafe_`` and whose
docstring says why it may skip the policy. That name is the one escape hatch: there is
no comment that silences the rule.

Flagged, with ``Model`` a sealed model (a bare name, an import alias, ``module.Model``
or a name bound to ``aliased(Model)``):

- ``select(Model)``, ``select(Model.id, Model)``: any entity among the selected;
- ``session.get(Model, ...)``, ``session.get_one(Model, ...)``, ``session.query(Model)``;
- ``statement.add_columns(Model)``, ``statement.with_only_columns(Model)``;
- ``select().select_from(Model)``: a statement that names no column of its own.

Not flagged: columns (``select(Patient.id)``, ``select(Consultation.status)``), counts
(``select(func.count()).select_from(Patient)``), ``update``/``delete``/``insert``, and
queries built from the policy's statements. The rule reads syntax, so a model reached
through a variable holding the class itself (``model = Patient; select(model)``) is
not seen: write the query where it can be read.

Usage: ``python scripts/lint_sealed_queries.py src/hippocrate [more paths]``. Prints
``path:line: message`` per violation and exits 1 if there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT_CLASS = "SealedModel"
ESCAPE_PREFIX = "unsafe_"
#: The one module allowed to load sealed models for anyone: the access policy.
POLICY_SUFFIX = ("hippocrate", "access", "policy.py")
#: Where the project's own sealed models are read from, whatever paths are linted.
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hippocrate"

#: Methods whose first argument, if a model, loads rows of it.
LOADING_METHODS = frozenset({"get", "get_one", "query"})
#: Statement methods whose arguments, if models, make the statement load rows of them.
ENTITY_METHODS = frozenset({"add_columns", "with_only_columns"})

MESSAGE = (
    "{model} is a sealed model: load it through hippocrate.access.policy "
    "(a readable_* statement scoped to the principal), or in a function named "
    "unsafe_... whose docstring says why it may skip the policy"
)


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.suffix == ".py":
            yield path


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def sealed_models(files: Iterable[Path]) -> frozenset[str]:
    """Names of the classes deriving from ``SealedModel`` in ``files``, transitively."""
    bases: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ClassDef):
                names = {name for b in node.bases if (name := _base_name(b)) is not None}
                bases.setdefault(node.name, set()).update(names)
    sealed = {ROOT_CLASS}
    grown = True
    while grown:
        grown = False
        for name, parents in bases.items():
            if name not in sealed and parents & sealed:
                sealed.add(name)
                grown = True
    sealed.discard(ROOT_CLASS)
    return frozenset(sealed)


class _Checker(ast.NodeVisitor):
    def __init__(self, path: Path, models: frozenset[str]) -> None:
        self.path = path
        self.models = set(models)
        self.functions: list[str] = []
        self.violations: list[Violation] = []

    # -- names that stand for a sealed model in this module --------------------------

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name in self.models and alias.asname:
                self.models.add(alias.asname)

    def visit_Assign(self, node: ast.Assign) -> None:
        # ``Other = aliased(Patient)`` loads Patient rows just as well.
        value = node.value
        if (
            isinstance(value, ast.Call)
            and _base_name(value.func) == "aliased"
            and value.args
            and self._model(value.args[0]) is not None
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.models.add(target.id)
        self.generic_visit(node)

    def _model(self, node: ast.expr) -> str | None:
        """The sealed model ``node`` names as an entity (not one of its columns)."""
        if isinstance(node, ast.Name) and node.id in self.models:
            return node.id
        if (
            isinstance(node, ast.Attribute)
            and node.attr in self.models
            and isinstance(node.value, ast.Name)
            and node.value.id not in self.models
        ):
            return node.attr
        if isinstance(node, ast.Call) and _base_name(node.func) == "aliased" and node.args:
            return self._model(node.args[0])
        return None

    # -- the escape hatch -------------------------------------------------------------

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def _excused(self) -> bool:
        return any(name.startswith(ESCAPE_PREFIX) for name in self.functions)

    # -- the rule ---------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> None:
        model = self._loaded_model(node)
        if model is not None and not self._excused():
            self.violations.append(Violation(self.path, node.lineno, MESSAGE.format(model=model)))
        self.generic_visit(node)

    def _loaded_model(self, node: ast.Call) -> str | None:
        func = node.func
        name = _base_name(func)
        if name == "select" or (isinstance(func, ast.Attribute) and name in ENTITY_METHODS):
            return next((m for a in node.args if (m := self._model(a)) is not None), None)
        if isinstance(func, ast.Attribute) and name in LOADING_METHODS and node.args:
            return self._model(node.args[0])
        if (
            isinstance(func, ast.Attribute)
            and name == "select_from"
            and node.args
            and _names_no_column(func.value)
        ):
            return next((m for a in node.args if (m := self._model(a)) is not None), None)
        return None


def _names_no_column(statement: ast.expr) -> bool:
    """Whether the statement ``select_from`` is called on was started by ``select()``
    with nothing to select (so its rows are the ``select_from`` entity's)."""
    while isinstance(statement, ast.Call) and isinstance(statement.func, ast.Attribute):
        if statement.func.attr in ENTITY_METHODS:
            return False
        statement = statement.func.value
    return (
        isinstance(statement, ast.Call)
        and _base_name(statement.func) == "select"
        and not statement.args
    )


def _is_policy(path: Path) -> bool:
    return path.resolve().parts[-len(POLICY_SUFFIX) :] == POLICY_SUFFIX


def check_file(path: Path, models: frozenset[str]) -> list[Violation]:
    if _is_policy(path):
        return []
    checker = _Checker(path, models)
    checker.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return checker.violations


def lint(paths: Iterable[Path]) -> list[Violation]:
    files = list(python_files(paths))
    models = sealed_models([*python_files([PACKAGE]), *files])
    return [v for path in files for v in check_file(path, models)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or [PACKAGE]
    violations = lint(paths)
    for violation in violations:
        sys.stdout.write(f"{violation}\n")
    if violations:
        sys.stderr.write(f"{len(violations)} sealed model queries outside the access policy\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
