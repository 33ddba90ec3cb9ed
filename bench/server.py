"""The real app, profiled: a bench-only application factory.

    uvicorn --factory bench.server:create_app

builds the app exactly as ``hippocrate.app.create_app`` does (settings from the
environment), then wraps, once at start-up, the functions whose share of request time
the API benchmark reports:

- ``vault``: the methods of ``Vault`` (seal, open, data keys, blind index);
- ``policy``: every function of ``hippocrate.access.policy``, and
  ``policy.get_readable`` for the one that runs a query (through the ORM);
- ``audit.append``: ``hippocrate.audit.service.append``;
- ``guard``: ``Guard.check_read``, ``ensure_not_contained`` and ``note_refusal``, with
  ``guard.check_read`` on its own and ``guard.state`` for the state store's methods;
- ``db``: the engine dialect's statement executions, commits and rollbacks (waiting
  for a lock happens in there), and ``db.audit_head`` for updates of the audit chain's
  head row.

Module functions are replaced wherever a module holds them (``from x import f`` binds
``f`` in the importing module too); methods are replaced on their class (the dialect's
on the engine's instance). A call made while the same category is already being timed
on that thread is not timed again, so nested calls (``data_key`` calling ``unwrap``, one
policy function calling another) are counted once. Each category's time is inclusive;
when one runs inside another (``db`` inside ``policy`` when the scoped query runs, or
when it autoflushes pending writes), the time is also added to ``overlap[outer][inner]``,
so the report can tell the policy's own work from the statements it waited on. Each
call is timed twice: wall clock (what the request waited, lock and GIL waits included)
and the thread's CPU time (what it cost).

An outer ASGI layer times every request from its arrival to the end of its response,
and answers ``GET /bench/stats`` (this process's totals, with its CPU time) and
``POST /bench/reset``. Never mount this in production: it adds a lock and two clock
reads to every call.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hippocrate.access import policy
from hippocrate.app import create_app as create_real_app
from hippocrate.audit import service as audit_service
from hippocrate.guard.service import Guard
from hippocrate.guard.state import DatabaseState, LocalState, RedisState
from hippocrate.runtime import Runtime
from hippocrate.vault import Vault

VAULT_METHODS = ("seal", "open", "data_key", "new_data_key", "unwrap", "rewrap", "blind_index")
GUARD_METHODS = ("check_read", "ensure_not_contained", "note_refusal")
STATE_METHODS = ("distinct_patients", "refusals", "contain", "contained", "release")
DIALECT_METHODS = (
    "do_execute",
    "do_executemany",
    "do_execute_no_params",
    "do_commit",
    "do_rollback",
)

Categories = Callable[[str], tuple[str, ...]]


class Profiler:
    """Seconds and calls per category, and the requests they happened in (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.seconds: dict[str, float] = defaultdict(float)
            self.cpu: dict[str, float] = defaultdict(float)
            self.calls: dict[str, int] = defaultdict(int)
            self.overlap: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
            self.requests = 0
            self.request_seconds = 0.0
            self.statuses: Counter[int] = Counter()
            self.cpu_start = time.process_time()

    def _active(self) -> set[str]:
        active: set[str] | None = getattr(self._local, "active", None)
        if active is None:
            active = self._local.active = set()
        return active

    def wrap(self, categories: tuple[str, ...], function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            active = self._active()
            mine = [c for c in categories if c not in active]
            if not mine:
                return function(*args, **kwargs)
            outer = list(active)
            active.update(mine)
            started, started_cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                cpu = time.thread_time() - started_cpu
                active.difference_update(mine)
                with self._lock:
                    for category in mine:
                        self.seconds[category] += elapsed
                        self.cpu[category] += cpu
                        self.calls[category] += 1
                        for around in outer:
                            self.overlap[around][category] += elapsed

        return timed

    def request(self, seconds: float, status: int) -> None:
        with self._lock:
            self.requests += 1
            self.request_seconds += seconds
            self.statuses[status] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "pid": os.getpid(),
                "cpu_seconds": time.process_time() - self.cpu_start,
                "requests": self.requests,
                "request_seconds": self.request_seconds,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "seconds": dict(self.seconds),
                "cpu": dict(self.cpu),
                "calls": dict(self.calls),
                "overlap": {k: dict(v) for k, v in self.overlap.items()},
            }


def _wrap_methods(
    profiler: Profiler, owner: object, names: Iterable[str], categories: Categories
) -> None:
    """Wrap methods on a class (static ones included) or on one instance."""
    for name in names:
        raw = inspect.getattr_static(owner, name)
        if isinstance(raw, staticmethod):
            setattr(owner, name, staticmethod(profiler.wrap(categories(name), raw.__func__)))
        elif isinstance(owner, type):
            setattr(owner, name, profiler.wrap(categories(name), raw))
        else:
            setattr(owner, name, profiler.wrap(categories(name), getattr(owner, name)))


def _wrap_functions(replacements: dict[int, Callable[..., Any]]) -> None:
    """Put each replacement wherever a loaded hippocrate module holds the original."""
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split(".")[0] != "hippocrate":
            continue
        for attribute, value in list(vars(module).items()):
            replacement = replacements.get(id(value))
            if replacement is not None:
                setattr(module, attribute, replacement)


def _wrap_dialect(profiler: Profiler, dialect: Any) -> None:
    """Every statement, commit and rollback is ``db``; an update of the audit chain's
    head row is also ``db.audit_head`` (the first one of a transaction waits for the
    row lock that every appending transaction holds until it commits)."""
    _wrap_methods(profiler, dialect, DIALECT_METHODS, lambda _name: ("db",))
    plain = dialect.do_execute
    head = profiler.wrap(("db", "db.audit_head"), plain.__wrapped__)

    def do_execute(cursor: Any, statement: str, parameters: Any, context: Any = None) -> Any:
        if statement.lstrip()[:18].upper() == "UPDATE AUDIT_HEAD ":
            return head(cursor, statement, parameters, context)
        return plain(cursor, statement, parameters, context)

    dialect.do_execute = do_execute


def install(profiler: Profiler, runtime: Runtime) -> None:
    """Wrap the vault, the policy, the audit append, the guard and the database
    dialect (once per process: the classes are shared)."""
    if getattr(Vault, "_bench_profiled", False):
        raise RuntimeError("the bench profiler is already installed in this process")
    Vault._bench_profiled = True  # type: ignore[attr-defined]
    _wrap_methods(profiler, Vault, VAULT_METHODS, lambda _name: ("vault",))
    _wrap_methods(
        profiler,
        Guard,
        GUARD_METHODS,
        lambda name: ("guard", "guard.check_read") if name == "check_read" else ("guard",),
    )
    for state in (LocalState, DatabaseState, RedisState):
        _wrap_methods(profiler, state, STATE_METHODS, lambda _name: ("guard.state",))
    _wrap_dialect(profiler, runtime.sessions.engine.dialect)

    replacements: dict[int, Callable[..., Any]] = {}
    for name, function in inspect.getmembers(policy, inspect.isfunction):
        if function.__module__ != policy.__name__:
            continue  # what it imports (select, and_...) is not the policy's own work
        categories = ("policy", "policy.get_readable") if name == "get_readable" else ("policy",)
        replacements[id(function)] = profiler.wrap(categories, function)
    replacements[id(audit_service.append)] = profiler.wrap(("audit.append",), audit_service.append)
    _wrap_functions(replacements)


class ProfiledApp:
    """Times every HTTP request and serves the profiler's two routes."""

    def __init__(self, app: ASGIApp, profiler: Profiler) -> None:
        self.app = app
        self.profiler = profiler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/bench/stats" and scope["method"] == "GET":
            await JSONResponse(self.profiler.snapshot())(scope, receive, send)
            return
        if path == "/bench/reset" and scope["method"] == "POST":
            self.profiler.reset()
            await JSONResponse({"pid": os.getpid()})(scope, receive, send)
            return
        status = 0

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.profiler.request(time.perf_counter() - started, status)


def create_app() -> ASGIApp:
    """The real app (settings from ``HIPPOCRATE_*``), profiled."""
    app = create_real_app()  # imports every router first, so every holder is patched
    profiler = Profiler()
    install(profiler, app.state.runtime)
    return ProfiledApp(app, profiler)
