"""The breach domain's pages: the DPO's guard alerts, register, incidents and drill, and
the patient's security notices.

The DPO's pages call what ``breach/api.py`` calls, on the incident fetched once by the
same dependency (``target_incident``); where the API's route holds the logic itself
(a scope, the notices' request and approval, the dossier, a notification), the page
calls that route's function, so the two cannot drift apart. They show counts, ids and
the register's own text, never a patient's data: a scope's patients are not listed,
the guard's alerts name the principal by role and id. The patient's page shows the
notices of ``GET /patients/me/notices`` and marks one seen as ``POST .../seen`` does.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from hippocrate.api.deps import DB, AppSettings, Now, get_runtime
from hippocrate.audit.models import AuditEvent, AuditPending, TrailEvent
from hippocrate.breach import api, dossier, notices, service, views
from hippocrate.breach.errors import InvalidIncident
from hippocrate.breach.models import Incident, IncidentOrigin, IncidentScope, Phase
from hippocrate.breach.schemas import (
    AssessmentIn,
    AssessmentSet,
    IncidentAmend,
    IncidentDetails,
    IncidentOpen,
    IncidentRead,
    NoticesLaunch,
    NotificationSent,
    ScopeAsk,
    Versioned,
)
from hippocrate.consultations.api import content_disposition
from hippocrate.errors import HippocrateError, InvalidField
from hippocrate.i18n import _n
from hippocrate.identity.models import Role
from hippocrate.runtime import Runtime
from hippocrate.tags import Tag
from hippocrate.web import render
from hippocrate.web.deps import PagePrincipal, pages_router, require_role
from hippocrate.web.errors import on_refusal
from hippocrate.web.render import Flash

router = pages_router()
public = pages_router(public=True)
# Routes sit on the module's router itself, each with its roles: the page matrix
# (tests/web/test_page_access.py) reads them there, where an included router would hide them.
DPO_ONLY = [require_role(Role.DPO)]
PATIENT_ONLY = [require_role(Role.PATIENT)]

PARIS = ZoneInfo("Europe/Paris")
ALERTS_SHOWN = 200
#: Where ``hippocrate drill --json`` may leave its report for this page to show.
DRILL_REPORT = "drill.json"
"""The file, in a deployment's data folder, where ``hippocrate drill`` keeps its last
report for this page."""

FLASHES = {
    "opened": _n("The incident is open: its clock runs from the time of awareness."),
    "amended": _n("The incident is amended."),
    "assessed": _n("The assessment is recorded."),
    "scoped": _n("The scope is computed, signed and kept."),
    "notified": _n("The notification to the authority is recorded."),
    "closed": _n("The incident is closed."),
    "reopened": _n("The incident is open again."),
    "requested": _n("The notices are requested: another DPO must approve them."),
    "approved": _n("The notices are approved: the notice job sends them."),
}

Runtime_ = Annotated[Runtime, Depends(get_runtime)]
M = TypeVar("M", bound=BaseModel)


async def posted(request: Request) -> FormData:
    """The form sent (already read by the CSRF check: Starlette keeps it)."""
    return await request.form()


Posted = Annotated[FormData, Depends(posted)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if "\x00" in value:
        # No text field holds a NUL, and PostgreSQL's refuse it: a server error otherwise.
        raise InvalidField(_n("{field}: this value is refused"), field=name)
    return value.strip()


def _optional(form: FormData, name: str) -> str | None:
    return _text(form, name) or None


MAX_DIGITS = 18


def _whole(text: str) -> int | None:
    """``text`` as a whole number if it is one of at most 18 ASCII digits, else None:
    ``"²".isdigit()`` is true and ``int()`` refuses it, and past Python's digit limit
    ``int()`` refuses too; either was a server error instead of a refusal."""
    if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS:
        return int(text)
    return None


def _version(form: FormData) -> int:
    version = _whole(_text(form, "version"))
    if version is None:
        raise InvalidIncident(_n("the form does not say which version it was made on"))
    return version


def _moment(form: FormData, name: str) -> str | None:
    """A ``datetime-local`` field, read as Paris time, as ISO 8601 (or None if empty)."""
    text = _text(form, name)
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidField(_n("{field}: not a date and time"), field=name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    return moment.isoformat()


def _validated(schema: type[M], data: dict[str, Any]) -> M:
    """``data`` as the API's own schema reads it; its first refusal as the API says it."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        refusal = (error.get("ctx") or {}).get("error")
        if isinstance(refusal, HippocrateError):
            raise refusal from None
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "details")
        raise InvalidField(
            _n("{field}: {reason}"), field=where or "form", reason=error.get("msg", "invalid")
        ) from None


def shown(moment: datetime | str | None) -> str:
    """A moment in Paris time, as the pages print it."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def local_input(moment: datetime | None) -> str:
    """A moment as a ``datetime-local`` field's value (Paris time)."""
    return moment.astimezone(PARIS).strftime("%Y-%m-%dT%H:%M") if moment else ""


# -- presenters ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClockView:
    state: str  # running | overdue | notified | notified late
    deadline: str
    late: bool
    hours: int
    minutes: int


def clock_view(remaining_seconds: int, state: str, deadline: datetime) -> ClockView:
    left = abs(remaining_seconds) // 60
    return ClockView(
        state=state,
        deadline=shown(deadline),
        late=remaining_seconds < 0,
        hours=left // 60,
        minutes=left % 60,
    )


@dataclass(frozen=True)
class Alert:
    at: str
    role: str
    principal: str
    rule: str
    reason: str | None  # the guard's full reason while it still holds the principal
    contained: bool
    incident_id: str | None
    incident_reference: str | None


def _alerts(db: DB, runtime: Runtime) -> list[Alert]:
    """The guard's containments from the trail (``guard:principal:contained``: role,
    account id, rule; no patient), newest first, each with the guard incident that
    names the principal and whether the guard holds it still."""
    # The newest first: those the chainer has not reached yet, then the chain's.
    pending = db.scalars(
        select(AuditPending)
        .where(AuditPending.action == Tag.GUARD_PRINCIPAL_CONTAINED)
        .order_by(AuditPending.id.desc())
        .limit(ALERTS_SHOWN)
    ).all()
    chained = db.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == Tag.GUARD_PRINCIPAL_CONTAINED)
        .order_by(AuditEvent.seq.desc())
        .limit(ALERTS_SHOWN)
    ).all()
    events: list[TrailEvent] = [*pending, *chained]
    del events[ALERTS_SHOWN:]
    incidents = db.scalars(
        select(Incident)
        .where(Incident.origin == IncidentOrigin.GUARD)
        .order_by(Incident.opened_at.desc())
    ).all()
    named: dict[str, Incident] = {}
    for incident in reversed(incidents):  # the newest incident naming one wins
        for principal in service.details_of(incident).nature.principals:
            named[str(principal.id)] = incident
    alerts = []
    for event in events:
        account = str(event.actor_account_id) if event.actor_account_id else ""
        rule = next(
            (r.removeprefix("reason:") for r in event.resources if r.startswith("reason:")), ""
        )
        held = (
            runtime.guard.state.contained(event.actor_account_id, session=db)
            if runtime.guard is not None and event.actor_account_id is not None
            else None
        )
        found = named.get(account)
        alerts.append(
            Alert(
                at=shown(event.at),
                role=event.actor_role,
                principal=account,
                rule=rule,
                reason=held,
                contained=held is not None,
                incident_id=str(found.id) if found else None,
                incident_reference=found.reference if found else None,
            )
        )
    return alerts


@dataclass(frozen=True)
class Line:
    label: str
    value: str


def _flat(value: Any, prefix: str = "") -> list[Line]:
    """A section of the details as lines ``path: value`` (empty items left out)."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            lines += _flat(item, f"{prefix}{key}." if isinstance(item, dict) else prefix + key)
        return lines
    if value is None or value in ([], ""):
        return []
    if isinstance(value, list):
        text = ", ".join(
            " ".join(f"{k}={v}" for k, v in v.items() if v) if isinstance(v, dict) else str(v)
            for v in value
        )
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and "T" in value:
        try:
            text = shown(value)
        except ValueError:
            text = value
    else:
        text = str(value)
    return [Line(prefix, text)]


@dataclass(frozen=True)
class ScopeView:
    kind: str
    computed_at: str
    head_seq: int
    since: str
    until: str
    principals: int
    counts: dict[str, int]
    checkpoint_seq: int | None
    checkpoint_at: str
    keys: str | None  # a database copy: whether the keys could have left with it


def _scope_view(scope: IncidentScope | None) -> ScopeView | None:
    if scope is None:
        return None
    document = scope.document
    parameters = document.get("parameters", {})
    checkpoint = document.get("checkpoint") or {}
    keys = (document.get("protection") or {}).get("keys") or {}
    return ScopeView(
        kind=scope.kind,
        computed_at=shown(scope.computed_at),
        head_seq=scope.head_seq,
        since=shown(parameters.get("since")),
        until=shown(parameters.get("until")),
        principals=len(parameters.get("principals", [])),
        counts={k: int(v) for k, v in document.get("counts", {}).items()},
        checkpoint_seq=checkpoint.get("seq"),
        checkpoint_at=shown(checkpoint.get("at")),
        keys=keys.get("why"),
    )


@dataclass(frozen=True)
class FactorView:
    name: str
    value: str
    justification: str
    overrides: list[dict[str, str]] = field(default_factory=list)


FACTORS = (
    "category",
    "identification",
    "confidentiality",
    "integrity",
    "availability",
    "malicious",
    "unintelligible",
    "mitigated",
    "disproportionate",
)
BOOLEAN_FACTORS = frozenset({"malicious", "unintelligible", "mitigated", "disproportionate"})
OPTIONAL_FACTORS = frozenset({"mitigated", "disproportionate"})


def _factors(assessment: dict[str, Any] | None) -> list[FactorView]:
    shown_factors = []
    for name in FACTORS:
        factor = (assessment or {}).get(name)
        if not factor:
            continue
        value = factor["value"]
        shown_factors.append(
            FactorView(
                name=name,
                value=("yes" if value else "no") if isinstance(value, bool) else str(value),
                justification=factor["justification"],
                overrides=[
                    {
                        "replaced": str(o["replaced"]),
                        "reason": o["reason"],
                        "by": o["by"],
                        "at": shown(o["at"]),
                    }
                    for o in factor.get("overrides", [])
                ],
            )
        )
    return shown_factors


@dataclass(frozen=True)
class NoticesView:
    requested: bool  # a request waits for a second DPO
    requested_by_me: bool
    requested_at: str
    launched: bool
    required: bool
    progress: dict[str, int]


def _incident_values(
    db: DB, incident: Incident, *, principal: PagePrincipal, clock: datetime, settings: Any
) -> dict[str, Any]:
    """Everything the incident's page shows, read before any change is tried."""
    policy = service.policy_of(settings)
    read: IncidentRead = views.read(db, incident, now=clock, policy=policy)
    decision = service.current_decision(incident, policy)
    pending = notices.pending_request(db, incident.id)
    details = read.details.model_dump(mode="json")
    return {
        "incident": read,
        "clock": clock_view(read.clock.remaining_seconds, read.clock.state, read.clock.deadline),
        "sections": {
            name: _flat(section, "" if isinstance(section, dict) else name)
            for name, section in details.items()
        },
        "form": _amend_defaults(read.details),
        "scope": _scope_view(service.latest_scope(db, incident)),
        "factors": _factors(incident.assessment),
        "assessment": _assessment_defaults(incident.assessment),
        "decision": decision.as_dict() if decision else None,
        "timeline": [
            {
                "seq": line.seq,
                "at": shown(line.at),
                "who": f"{line.actor_role} {line.actor_id or ''}".strip(),
                "action": line.action,
                "changes": ", ".join(sorted(line.changes)) if line.changes else "",
                "note": line.note or "",
            }
            for line in read.timeline
        ],
        "notices": NoticesView(
            requested=pending is not None,
            requested_by_me=pending is not None and pending.actor_id == principal.account_id,
            requested_at=shown(pending.at) if pending else "",
            launched=notices.launched_scope(db, incident.id) is not None,
            required=bool(decision and decision.notify_people),
            progress=notices.progress(db, incident.id).as_dict(),
        ),
        "notifications": [
            {
                "phase": n.phase,
                "sent_at": shown(n.sent_at),
                "receipt": n.receipt_reference or "",
                "delay_reason": n.delay_reason or "",
                "digest": n.digest,
            }
            for n in read.notifications
        ],
        "now_input": local_input(clock),
        "flash": None,
    }


#: The amendment form's fields: (name, path into the details).
AMEND_FIELDS = (
    ("title", ("general", "title")),
    ("summary", ("general", "summary")),
    ("cause", ("nature", "cause")),
    ("means", ("nature", "means")),
    ("systems", ("nature", "systems")),
    ("people_count", ("data", "people_count")),
    ("records_count", ("data", "records_count")),
    ("consequences", ("consequences",)),
    ("measures_taken", ("measures", "taken")),
    ("measures_planned", ("measures", "planned")),
    ("dpo_name", ("contacts", "dpo", "name")),
    ("dpo_email", ("contacts", "dpo", "email")),
)
LISTS = {
    "people_categories": (("data", "people_categories"), ("patients", "practitioners", "staff")),
    "data_categories": (
        ("data", "data_categories"),
        ("identity", "contact", "nir", "health", "attachment", "credentials", "access"),
    ),
}


def _amend_defaults(details: IncidentDetails) -> dict[str, Any]:
    data = details.model_dump(mode="json")
    values: dict[str, Any] = {}
    for name, path in AMEND_FIELDS:
        value: Any = data
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        values[name] = "" if value is None else str(value)
    for name, (path, _) in LISTS.items():
        value = data
        for part in path:
            value = value.get(part, [])
        values[name] = list(value)
    values["choices"] = {name: choices for name, (_, choices) in LISTS.items()}
    return values


def _assessment_defaults(assessment: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    values = {}
    for name in FACTORS:
        factor = (assessment or {}).get(name) or {}
        value = factor.get("value")
        values[name] = {
            "value": ("yes" if value else "no") if isinstance(value, bool) else str(value or ""),
            "justification": factor.get("justification", ""),
        }
    return values


def _flash(request: Request, done: str) -> Flash | None:
    message = FLASHES.get(done)
    if message is None:
        return None
    return Flash(render.translator(render.language_of(request))(message), "success")


# -- guard alerts, the register --------------------------------------------------------


@router.get("/dpo", dependencies=DPO_ONLY)
def alerts_page(request: Request, db: DB, runtime: Runtime_) -> Response:
    return render.page(request, "breach/alerts.html", alerts=_alerts(db, runtime))


def _register(db: DB, clock: datetime, settings: Any) -> list[dict[str, Any]]:
    policy = service.policy_of(settings)
    return [
        {
            "summary": summary,
            "clock": clock_view(
                summary.clock.remaining_seconds, summary.clock.state, summary.clock.deadline
            ),
            "opened": shown(summary.opened_at),
        }
        for summary in api.list_incidents(db, clock, policy)
    ]


@router.get("/dpo/incidents", dependencies=DPO_ONLY)
def register_page(request: Request, db: DB, clock: Now, settings: AppSettings) -> Response:
    return render.page(
        request,
        "breach/register.html",
        incidents=_register(db, clock, settings),
        title="",
        summary="",
        awareness="",
    )


@router.post("/dpo/incidents", dependencies=DPO_ONLY)
def open_incident(
    request: Request, form: Posted, db: DB, clock: Now, settings: AppSettings
) -> Response:
    title, summary = _text(form, "title"), _text(form, "summary")
    on_refusal(
        request,
        "breach/register.html",
        incidents=_register(db, clock, settings),
        title=title,
        summary=summary,
        awareness=_text(form, "awareness_at"),
    )
    body = _validated(
        IncidentOpen,
        {
            "awareness_at": _moment(form, "awareness_at"),
            "details": {"general": {"title": title or None, "summary": summary or None}},
        },
    )
    opened = api.open_incident(body, db, clock, service.policy_of(settings))
    return render.redirect(request, f"/dpo/incidents/{opened.id}?done=opened")


# -- one incident ----------------------------------------------------------------------

Target = api.TargetIncident


@router.get("/dpo/incidents/{incident_id}", dependencies=DPO_ONLY)
def incident_page(
    *,
    request: Request,
    incident: Target,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
    done: str = "",
) -> Response:
    values = _incident_values(db, incident, principal=principal, clock=clock, settings=settings)
    values["flash"] = _flash(request, done)
    return render.page(request, "breach/incident.html", **values)


def _refused_here(
    *,
    request: Request,
    db: DB,
    incident: Target,
    principal: PagePrincipal,
    clock: Now,
    settings: AppSettings,
) -> None:
    """A refused change shows the incident's page again, with the refusal (every form
    of an incident's page: ``INCIDENT_FORM``)."""
    values = _incident_values(db, incident, principal=principal, clock=clock, settings=settings)
    on_refusal(request, "breach/incident.html", **values)


INCIDENT_FORM = [*DPO_ONLY, Depends(_refused_here)]
"""The dependencies of every form posted from an incident's page."""


def _done(incident: Incident, what: str) -> str:
    return f"/dpo/incidents/{incident.id}?done={what}"


@router.post("/dpo/incidents/{incident_id}/amend", dependencies=INCIDENT_FORM)
def amend_incident(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> Response:
    patch: dict[str, Any] = {}
    for name, path in AMEND_FIELDS:
        value: Any = _optional(form, name)
        if value is not None and name in ("people_count", "records_count"):
            number = _whole(value)
            if number is None:
                raise InvalidField(_n("{field}: a whole number"), field=name)
            value = number
        _put(patch, path, value)
    for name, (path, choices) in LISTS.items():
        _put(patch, path, [v for v in form.getlist(name) if v in choices])
    extra = _text(form, "patch")
    if extra:
        try:
            more = json.loads(extra)
        except (ValueError, RecursionError):  # nested past the parser's stack: refused
            raise InvalidField(_n("{field}: not valid JSON"), field="patch") from None
        if _depth(more) > MAX_PATCH_DEPTH:
            raise InvalidField(_n("{field}: not valid JSON"), field="patch")
        if not isinstance(more, dict):
            raise InvalidField(_n("{field}: a JSON object"), field="patch")
        patch = _merged(patch, more)
    body = _validated(
        IncidentAmend,
        {
            "version": _version(form),
            "details": patch,
            "awareness_at": _moment(form, "awareness_at"),
            "note": _optional(form, "note"),
        },
    )
    api.amend_incident(body, incident, db, clock, service.policy_of(settings))
    return render.redirect(request, _done(incident, "amended"))


def _put(patch: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = patch
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


#: An incident's details are a few levels deep: a patch nested deeper is no amendment,
#: and each step after the parser (merging, validating, storing) would recurse into it.
MAX_PATCH_DEPTH = 16


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects, counted without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


def _merged(patch: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(patch)
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


@router.post("/dpo/incidents/{incident_id}/assessment", dependencies=INCIDENT_FORM)
def assess_incident(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> Response:
    before = incident.assessment or {}
    assessment: dict[str, Any] = {"adjustments": before.get("adjustments", [])}
    for name in FACTORS:
        raw = _text(form, name)
        if name in OPTIONAL_FACTORS and not raw:
            continue
        value: Any = raw
        if name in BOOLEAN_FACTORS:
            value = {"yes": True, "no": False}.get(raw, raw)
        elif name == "category":
            number = _whole(raw)
            value = raw if number is None else number
        prior = before.get(name) or {}
        overrides = list(prior.get("overrides", []))
        justification = _text(form, f"{name}_why")
        if prior and prior.get("value") != value:
            # A changed factor keeps what it replaced, who changed it and why.
            overrides.append(
                {
                    "replaced": prior.get("value"),
                    "reason": _text(form, f"{name}_override") or justification,
                    "by": f"{principal.role.value}:{principal.account_id}",
                    "at": clock.isoformat(),
                }
            )
        assessment[name] = {
            "value": value,
            "justification": justification,
            "overrides": overrides,
        }
    body = _validated(AssessmentIn, assessment)
    api.assess_incident(
        AssessmentSet(version=_version(form), assessment=body),
        incident,
        db,
        clock,
        service.policy_of(settings),
    )
    return render.redirect(request, _done(incident, "assessed"))


@router.post("/dpo/incidents/{incident_id}/scope", dependencies=INCIDENT_FORM)
def compute_scope(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    runtime: Runtime_,
    db: DB,
    clock: Now,
) -> Response:
    body = _validated(
        ScopeAsk,
        {
            "version": _version(form),
            "kind": _text(form, "kind") or "principals",
            "since": _moment(form, "since"),
            "until": _moment(form, "until"),
        },
    )
    # The API's answer names the patients: the page keeps only that it was done.
    api.compute_scope(body, incident, runtime, db, clock)
    return render.redirect(request, _done(incident, "scoped"))


@router.post("/dpo/incidents/{incident_id}/notifications", dependencies=INCIDENT_FORM)
def record_notification(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> Response:
    body = _validated(
        NotificationSent,
        {
            "version": _version(form),
            "phase": _text(form, "phase"),
            "sent_at": _moment(form, "sent_at"),
            "receipt_reference": _optional(form, "receipt_reference"),
            "delay_reason": _optional(form, "delay_reason"),
        },
    )
    api.record_notification(body, incident, db, clock, service.policy_of(settings))
    return render.redirect(request, _done(incident, "notified"))


@router.post("/dpo/incidents/{incident_id}/close", dependencies=INCIDENT_FORM)
def close_incident(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> Response:
    body = _validated(Versioned, {"version": _version(form), "note": _text(form, "note")})
    api.close_incident(body, incident, db, clock, service.policy_of(settings))
    return render.redirect(request, _done(incident, "closed"))


@router.post("/dpo/incidents/{incident_id}/reopen", dependencies=INCIDENT_FORM)
def reopen_incident(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    db: DB,
    clock: Now,
    settings: AppSettings,
) -> Response:
    body = _validated(Versioned, {"version": _version(form), "note": _text(form, "note")})
    api.reopen_incident(body, incident, db, clock, service.policy_of(settings))
    return render.redirect(request, _done(incident, "reopened"))


@router.post("/dpo/incidents/{incident_id}/notices", dependencies=INCIDENT_FORM)
def request_notices(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    runtime: Runtime_,
    db: DB,
    clock: Now,
) -> Response:
    body = _validated(
        NoticesLaunch,
        {"version": _version(form), "voluntary_reason": _optional(form, "voluntary_reason")},
    )
    api.request_notices(body, incident, runtime, db, clock)
    return render.redirect(request, _done(incident, "requested"))


@router.post("/dpo/incidents/{incident_id}/notices/approve", dependencies=INCIDENT_FORM)
def approve_notices(
    *,
    request: Request,
    form: Posted,
    incident: Target,
    principal: PagePrincipal,
    runtime: Runtime_,
    db: DB,
    clock: Now,
) -> Response:
    body = _validated(
        Versioned, {"version": _version(form), "note": _text(form, "note") or "approved"}
    )
    # The requester is refused by the service (SameApprover), as through the API.
    api.approve_notices(body, incident, runtime, db, clock)
    return render.redirect(request, _done(incident, "approved"))


def _document(db: DB, incident: Incident, clock: datetime, settings: Any) -> dict[str, Any]:
    """The dossier ``GET .../dossier`` answers: as it would be sent now."""
    sent = service.notifications_of(db, incident)
    phase = Phase.COMPLEMENTARY if sent else Phase.INITIAL
    return api.dossier_document(  # the API's own builder
        db, incident, phase=phase, now=clock, policy=service.policy_of(settings)
    )


@router.get("/dpo/incidents/{incident_id}/dossier", dependencies=DPO_ONLY)
def dossier_page(
    request: Request, incident: Target, db: DB, clock: Now, settings: AppSettings
) -> Response:
    document = _document(db, incident, clock, settings)
    return render.page(
        request,
        "breach/dossier_view.html",
        incident_id=str(incident.id),
        reference=incident.reference,
        phase=document["general"]["phase"],
        sections=dossier.printable(document),  # the PDF's lines
        missing=document["missing"],
    )


@router.get("/dpo/incidents/{incident_id}/dossier.pdf", dependencies=DPO_ONLY)
def dossier_pdf(incident: Target, db: DB, clock: Now, settings: AppSettings) -> Response:
    document = _document(db, incident, clock, settings)
    filename = f"{incident.reference}-{document['general']['phase']}.pdf"
    return Response(
        dossier.pdf(document),
        media_type="application/pdf",
        headers={"Content-Disposition": content_disposition(filename)},
    )


# -- the drill -------------------------------------------------------------------------


def _drill_report(settings: Any) -> dict[str, Any] | None:
    """The report ``hippocrate drill --json <data folder>/drill.json`` left, if any: the
    drill runs on a deployment of its own and stores nothing in this one."""
    path = Path(settings.data_dir) / DRILL_REPORT
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("format") != "hippocrate.drill.v1":
        return None
    response = report.get("response") or {}
    return {
        "patients": report.get("patients"),
        "found": (report.get("database_copy") or {}).get("found"),
        "searched": (report.get("database_copy") or {}).get("searched"),
        "attacks": [a for a in report.get("attacks", []) if isinstance(a, dict)],
        "reference": response.get("reference"),
        "scope_patients": response.get("scope_patients"),
        "severity": (response.get("severity") or {}).get("band"),
        "notify_people": response.get("notify_people"),
        "notices_queued": response.get("notices_queued"),
        "seconds": response.get("seconds_detection_to_notices"),
        "modified": shown(datetime.fromtimestamp(path.stat().st_mtime).astimezone()),
    }


@router.get("/dpo/drill", dependencies=DPO_ONLY)
def drill_page(request: Request, settings: AppSettings) -> Response:
    return render.page(
        request,
        "breach/drill.html",
        report=_drill_report(settings),
        # Named by its setting, not its path: the page tells no one the server's folders.
        report_path=f"$HIPPOCRATE_DATA_DIR/{DRILL_REPORT}",
    )


# -- the patient's notices -------------------------------------------------------------


def _paragraphs(text: str | dict[str, Any]) -> list[str]:
    """A notice's text as paragraphs: the French letter, or the English fields."""
    if isinstance(text, str):
        return [p.strip() for p in text.split("\n\n") if p.strip()]
    lines = [str(text.get("summary", ""))]
    if text.get("involved"):
        lines.append("Involved: " + "; ".join(text["involved"]) + ".")
    if text.get("not_involved"):
        lines.append("Not involved: " + "; ".join(text["not_involved"]) + ".")
    lines += [str(text.get(k, "")) for k in ("never", "to_do")]
    lines.append(f"Data protection officer: {text.get('dpo', '')}")
    lines.append(str(text.get("complaint", "")))
    return [line for line in lines if line]


@router.get("/patient/notices", dependencies=PATIENT_ONLY)
def notices_page(
    request: Request,
    principal: PagePrincipal,
    db: DB,
    settings: AppSettings,
    seen: bool = False,
) -> Response:
    language = render.language_of(request)
    own = api.own_patient(principal)
    shown_notices = [
        {**notice, "paragraphs": _paragraphs(notice["text"])}
        for notice in api.my_notices(own, db, settings, language)
    ]
    flash = (
        Flash(render.translator(language)(_n("The notice is marked as read.")), "success")
        if seen
        else None
    )
    return render.page(request, "breach/notices.html", notices=shown_notices, flash=flash)


@router.post("/patient/notices/{notice_id}/seen", dependencies=PATIENT_ONLY)
def notice_seen(
    request: Request, notice_id: uuid.UUID, principal: PagePrincipal, db: DB, clock: Now
) -> Response:
    # Another patient's notice is not found, as through the API.
    api.notice_seen(notice_id, api.own_patient(principal), db, clock)
    return render.redirect(request, "/patient/notices?seen=true")
