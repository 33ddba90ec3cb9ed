"""Structured logs: one JSON object per line (or a readable line in a terminal), from
every logger of the process, the standard library's and structlog's alike.

What a line may say is an allow-list (:data:`SAFE_KEYS`), applied last, to every line:
a key that is not on it never reaches the output, whatever its value; only its name is
kept (``redacted``), so a developer sees that something was dropped. The values the
standard library's loggers interpolate (``log.warning("email %s ...", value)``) are
kept only when they are of a type that cannot hold a person's words (ids, numbers,
booleans, the code's own enumerations, exception class names); any other is written
``<redacted>``. An exception is its class names and its frames (file, line, function),
never its message: a database error's message quotes the statement's parameters.

Guaranteed: a line holds the time (UTC, ISO 8601), the level, the logger, the event
(the message's template), and within a request its id, its route template (never the
raw path, which carries ids), the principal's role and account id, and the answer's
status. Not guaranteed: an event template that a caller built with a personal value in
it (an f-string) stays as written; the code logs templates, and the privacy test
(tests/ops/test_logs.py) drives a workload through every logger to hold it.
"""

from __future__ import annotations

import contextvars
import enum
import json
import logging
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import IO, Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from hippocrate.config import Settings

Format = Literal["json", "console"]

#: The keys a line may carry; every other one is dropped (its name goes to ``redacted``).
SAFE_KEYS = frozenset(
    {
        "time",
        "level",
        "logger",
        "event",
        "args",
        # the request (the route's template, never the path)
        "request_id",
        "method",
        "route",
        "status",
        "outcome",
        "duration_ms",
        "role",
        "account_id",
        # the guard's security lines (ids, the rule that fired)
        "what",
        "account",
        "patient",
        "request",
        "by",
        "at",
        # exceptions: class names and frames, never the message
        "exception",
        "stack",
        # counts of long commands
        "command",
        "done",
        "total",
        "redacted",
    }
)

REDACTED = "<redacted>"
_FIRST = ("time", "level", "logger", "event")

_MARK = "_hippocrate_logs"  # set on the handlers configure installs, to replace them


@dataclass
class RequestContext:
    """What a request's lines say about it. One mutable object per request, shared by
    every context copied from the request's (the threads sync routes run in), so the
    principal bound deep in a dependency is on the request's last line too."""

    scope: MutableMapping[str, Any]
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    role: str | None = None
    account_id: str | None = None
    status: int | None = None

    def values(self) -> dict[str, Any]:
        state = self.scope.get("state") or {}
        found: dict[str, Any] = {
            # The security middleware's id, which the audit trail records, once it is set.
            "request_id": state.get("request_id") or self.request_id,
            "method": self.scope.get("method"),
            "route": route_template(self.scope),
            "role": self.role,
            "account_id": self.account_id,
            "status": self.status,
        }
        return {k: v for k, v in found.items() if v is not None}


def route_template(scope: MutableMapping[str, Any]) -> str | None:
    """The template of the route that answered (``/api/v1/consultations/{consultation_id}``),
    never the path; None before routing or when no route matched. FastAPI keeps the
    whole template (prefixes of included routers too) in its effective route context;
    a route's own path is the fallback (tests/ops/test_logs.py pins the whole one)."""
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(effective, "path_format", None)
    if isinstance(template, str) and template:
        return template
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


_request: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "hippocrate_request", default=None
)


def bind_principal(*, role: str, account_id: uuid.UUID | str | None) -> None:
    """Name the request's principal (role and account id) on its lines from here on;
    nothing outside a request."""
    context = _request.get()
    if context is not None:
        context.role = role
        context.account_id = None if account_id is None else str(account_id)


# -- processors ---------------------------------------------------------------------------


def _add_request(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    context = _request.get()
    if context is not None:
        for key, value in context.values().items():
            event.setdefault(key, value)
    return event


def _add_time(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    at = record.created if isinstance(record, logging.LogRecord) else time.time()
    event["time"] = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return event


def _add_logger_and_level(_: WrappedLogger, method: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    if isinstance(record, logging.LogRecord):
        event["logger"] = record.name
        event["level"] = record.levelname.lower()
    else:
        event.setdefault("level", "warning" if method == "warn" else method)
    return event


@cache
def _exception_names() -> frozenset[str]:
    names: set[str] = set()
    todo: list[type[BaseException]] = [BaseException]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(names)


def _exception_name(value: str) -> bool:
    if value in _exception_names():
        return True
    _exception_names.cache_clear()  # a class defined since: look again, once
    return value in _exception_names()


def _safe_arg(value: object) -> object:
    """``value`` if nothing a person wrote can be in it, else ``<redacted>``."""
    if value is None or isinstance(value, bool | int | float | uuid.UUID):
        return value
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, int | str) else value.name
    if isinstance(value, str) and value.isidentifier() and _exception_name(value):
        return value  # type(exc).__name__
    return REDACTED


def _foreign_message(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """A standard library record: its template is the event, its arguments are kept only
    when safe; a message that is a JSON object (the guard's) gives its keys."""
    record = event.get("_record")
    if not isinstance(record, logging.LogRecord):
        return event
    args = event.pop("positional_args", ()) or ()
    template = record.msg
    if not isinstance(template, str):
        event["event"] = f"<{type(template).__name__}>"
        return event
    if template.startswith("{") and not args:
        try:
            lifted = json.loads(template)
        except ValueError:
            lifted = None
        if isinstance(lifted, dict):
            event["event"] = str(lifted.pop("event", "message"))
            for key, value in lifted.items():
                if key not in ("time", "level", "logger"):
                    event[key] = value
            return event
    if isinstance(args, dict):
        args = ()  # "%(name)s" templates: nothing of the mapping is shown
    safe = tuple(_safe_arg(a) for a in args) if isinstance(args, tuple) else ()
    try:
        event["event"] = template % safe if safe else template
    except (TypeError, ValueError, KeyError):
        event["event"] = template
        event["args"] = [a if isinstance(a, int | float | bool) else str(a) for a in safe]
    return event


def _exception(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """An exception as its class names (causes included) and frames; never its message."""
    info = event.pop("exc_info", None)
    event.pop("stack_info", None)
    if info is True:
        info = sys.exc_info()
    elif isinstance(info, BaseException):
        info = (type(info), info, info.__traceback__)
    if not isinstance(info, tuple) or info[1] is None:
        return event
    error: BaseException | None = info[1]
    names: list[str] = []
    frames: list[str] = []
    while error is not None and len(names) < 5:
        names.append(f"{type(error).__module__}.{type(error).__qualname__}")
        if not frames:
            frames = [
                f"{f.filename}:{f.lineno} in {f.name}"
                for f in traceback.extract_tb(error.__traceback__)[-12:]
            ]
        error = error.__cause__ or error.__context__
    event["exception"] = " <- ".join(names)
    event["stack"] = frames
    return event


def allow_list(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """The last step before rendering: every key off :data:`SAFE_KEYS` is dropped."""
    dropped = sorted(k for k in event if k not in SAFE_KEYS and not k.startswith("_"))
    kept = {k: event[k] for k in _FIRST if k in event}
    kept |= {k: v for k, v in event.items() if k in SAFE_KEYS}
    if dropped:
        kept["redacted"] = dropped
    return kept


def _json(_: WrappedLogger, __: str, event: EventDict) -> str:
    return json.dumps(event, default=str, ensure_ascii=False, separators=(",", ":"))


_PRE: list[Processor] = [
    _foreign_message,
    _add_time,
    _add_logger_and_level,
    _add_request,
    _exception,
]


def formatter(fmt: Format, *, colors: bool = False) -> logging.Formatter:
    """The formatter every handler uses: the pre-chain (structlog's lines take the same
    steps), the allow-list, a renderer."""
    renderer: Processor = (
        _json
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=colors, sort_keys=False, pad_event_to=0, timestamp_key="time"
        )
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_PRE,
        processors=[
            _structlog_pre,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            allow_list,
            renderer,
        ],
        use_get_message=False,
        pass_foreign_args=True,
    )


def _structlog_pre(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """structlog's lines: the time, the request and the exception, as the standard
    library's get them in the pre-chain."""
    if event.get("_from_structlog"):
        for step in (_add_time, _add_request, _exception):
            event = step(logger, method, event)
    return event


def get_logger(name: str) -> Any:
    """A structlog logger (key-value events) writing through the standard library's
    logger ``name``, so through the handler :func:`configure` installs, whether or not
    structlog itself was configured."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def handler(fmt: Format, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler writing lines of ``fmt`` (``stream``: default stderr)."""
    out = stream if stream is not None else sys.stderr
    made = logging.StreamHandler(out)
    made.setFormatter(formatter(fmt, colors=fmt == "console" and _tty(out)))
    setattr(made, _MARK, True)
    return made


def _tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def resolve_format(settings: Settings, stream: IO[str] | None = None) -> Format:
    """``auto``: readable lines in a terminal, JSON otherwise."""
    if settings.log_format != "auto":
        return settings.log_format
    return "console" if _tty(stream if stream is not None else sys.stderr) else "json"


def configure(
    settings: Settings, *, stream: IO[str] | None = None, level: int = logging.INFO
) -> Format:
    """Send every logger of the process through one handler on ``stream`` (stderr), in
    the configured format; structlog's loggers too. Run again, it replaces its handler
    (never another's). Returns the format chosen."""
    fmt = resolve_format(settings, stream)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler(fmt, stream))
    root.setLevel(level)
    # The server's access log holds raw paths (ids) and client addresses: the
    # middleware's request line, with the route's template, replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return fmt


# -- the request middleware -----------------------------------------------------------------

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

_requests = get_logger("hippocrate.requests")


def _outcome(status: int) -> str:
    if status < 400:
        return "ok"
    return "refused" if status < 500 else "failed"


class RequestLogMiddleware:
    """Binds each HTTP request's context (:class:`RequestContext`) for every line logged
    while it runs, and logs one line when it ends: method, route template, status,
    outcome, duration, principal. Install it outermost
    (``app.add_middleware(RequestLogMiddleware)`` after the others)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(scope=scope)
        token = _request.set(context)
        started = time.perf_counter()

        async def sending(message: Any) -> None:
            if message.get("type") == "http.response.start":
                context.status = int(message.get("status", 0))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            context.status = 500
            _requests.exception("request failed")
            raise
        finally:
            status = context.status or 500
            elapsed = round((time.perf_counter() - started) * 1000, 1)
            _requests.info("request", outcome=_outcome(status), duration_ms=elapsed)
            _request.reset(token)
