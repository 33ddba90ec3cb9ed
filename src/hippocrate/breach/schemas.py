"""The shapes of the incident register: its details, its assessment, what the API shows.

``IncidentDetails`` is the superset of what Art. 33(3) requires, the CNIL's online form
asks and the EDPB's common template lists, in the template's order of sections:

1. ``general``: title, summary, cross-border processing and lead authority;
2. ``contacts``: the DPO and the legal representative;
3. ``timeline``: start, discovery and end of the breach (awareness is the incident's
   own column: the clock starts there), how it was discovered;
4. ``nature``: confidentiality, integrity, availability; origin, cause and means; the
   systems involved; the compromised principals (the scope's input);
5. ``data``: categories and approximate numbers of people and of records, categories
   of data (the trail's categories);
6. ``consequences`` and ``measures``: likely consequences; measures taken and planned;
7. ``information``: whether, when and how the people were or will be told, or why not;
   ``other_notifications``: the police complaint, the health-sector report (ARS /
   CERT Santé), other authorities.

Every field is optional while the incident is being documented; what the dossier still
misses is listed by :func:`missing`, and an initial notification may go with gaps (Art.
33(4): in phases), a complementary one fills them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, model_validator

from hippocrate.breach.severity import (
    Adjustment,
    Assessment,
    DataCategory,
    Factor,
    Identification,
    Loss,
    Override,
)
from hippocrate.tags import Category

T = TypeVar("T")

_Text = Field(default=None, max_length=4000)
_Short = Field(default=None, max_length=200)
#: The most people or records an incident counts: beyond it a count is a typing
#: error (and would not fit the database's integers).
MAX_COUNT = 10**9
#: An incident's version, bounded as the database's integer is.
MAX_VERSION = 2**31 - 1
NUL = "\x00"


def _refuse_nul(value: Any) -> None:
    """Refuse a NUL anywhere in ``value``'s strings (a dict's keys included):
    PostgreSQL's text and JSON fields cannot hold one (a server error there, kept
    on SQLite), and no text of the register needs one."""
    if isinstance(value, str):
        if NUL in value:
            raise ValueError("a text may not hold a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key)
            _refuse_nul(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_nul(item)


class _Section(BaseModel):
    """Every input shape of the register: no unknown member, and no NUL in any of its
    texts (the free-form merge patch and overrides' values included)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        _refuse_nul(data)
        return data


class General(_Section):
    title: str | None = _Short
    summary: str | None = _Text
    cross_border: bool | None = None
    lead_authority: str | None = _Short
    other_member_states: list[str] = Field(default_factory=list, max_length=30)


class Contact(_Section):
    name: str | None = _Short
    email: EmailStr | None = None
    phone: str | None = Field(default=None, max_length=40)


class Contacts(_Section):
    dpo: Contact = Field(default_factory=Contact)
    legal_representative: Contact = Field(default_factory=Contact)


class Timeline(_Section):
    started_at: AwareDatetime | None = None
    discovered_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    ongoing: bool | None = None
    how_discovered: str | None = _Text


PrincipalKind = Literal["account", "session", "operator", "client"]


class CompromisedPrincipal(_Section):
    kind: PrincipalKind
    id: uuid.UUID
    since: AwareDatetime | None = None  # when it is thought compromised
    until: AwareDatetime | None = None  # contained, revoked or released


class Nature(_Section):
    confidentiality: bool | None = None
    integrity: bool | None = None
    availability: bool | None = None
    origin: Literal["internal", "external", "unknown"] | None = None
    malicious: bool | None = None
    cause: str | None = _Text
    means: str | None = _Text
    systems: str | None = _Text
    principals: list[CompromisedPrincipal] = Field(default_factory=list, max_length=1000)
    database_copied: bool = False


class Data(_Section):
    people_categories: list[Literal["patients", "practitioners", "staff"]] = Field(
        default_factory=list
    )
    people_count: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    records_count: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    data_categories: list[Category] = Field(default_factory=list)


class Measures(_Section):
    taken: str | None = _Text
    planned: str | None = _Text


class Information(_Section):
    people_informed: bool | None = None
    informed_at: AwareDatetime | None = None
    planned_at: AwareDatetime | None = None
    channels: list[Literal["email", "banner", "post", "public"]] = Field(default_factory=list)
    why_not: str | None = _Text


class Report(_Section):
    done: bool | None = None
    at: AwareDatetime | None = None
    reference: str | None = _Short


class OtherNotifications(_Section):
    police_complaint: Report = Field(default_factory=Report)
    health_sector_report: Report = Field(default_factory=Report)  # ARS / CERT Santé
    other_authorities: str | None = _Text


class IncidentDetails(_Section):
    general: General = Field(default_factory=General)
    contacts: Contacts = Field(default_factory=Contacts)
    timeline: Timeline = Field(default_factory=Timeline)
    nature: Nature = Field(default_factory=Nature)
    data: Data = Field(default_factory=Data)
    consequences: str | None = _Text
    measures: Measures = Field(default_factory=Measures)
    information: Information = Field(default_factory=Information)
    other_notifications: OtherNotifications = Field(default_factory=OtherNotifications)


#: What Art. 33(3) requires in a notification, as paths into ``IncidentDetails``.
REQUIRED = (
    ("nature", "cause"),
    ("data", "people_categories"),
    ("data", "people_count"),
    ("data", "data_categories"),
    ("data", "records_count"),
    ("contacts", "dpo", "name"),
    ("contacts", "dpo", "email"),
    ("consequences",),
    ("measures", "taken"),
)


def missing(details: IncidentDetails) -> list[str]:
    """The Art. 33(3) items the details do not give yet, as dotted paths."""
    gaps = []
    for path in REQUIRED:
        value: Any = details
        for name in path:
            value = getattr(value, name)
        if value is None or value == []:
            gaps.append(".".join(path))
    return gaps


def merged(details: IncidentDetails, patch: dict[str, Any]) -> IncidentDetails:
    """``details`` with ``patch`` applied section by section (a JSON merge patch: a
    member set to null clears it), validated whole."""
    return IncidentDetails.model_validate(_merge(details.model_dump(mode="json"), patch))


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return patch
    out = dict(target)
    for key, value in patch.items():
        out[key] = _merge(out.get(key), value) if isinstance(value, dict) else value
    return out


def changed_paths(
    before: dict[str, Any], after: dict[str, Any], prefix: str = ""
) -> dict[str, Any]:
    """``{dotted path: [before, after]}`` of every leaf that differs."""
    changes: dict[str, Any] = {}
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        path = f"{prefix}{key}"
        if isinstance(b, dict) and isinstance(a, dict):
            changes.update(changed_paths(b, a, f"{path}."))
        elif b != a:
            changes[path] = [b, a]
    return changes


# -- the ENISA assessment as the API and the register carry it -----------------------


class OverrideIn(_Section):
    replaced: Any
    reason: str = Field(min_length=1, max_length=2000)
    by: str = Field(min_length=1, max_length=80)
    at: AwareDatetime


class FactorIn(_Section, Generic[T]):
    value: T
    justification: str = Field(min_length=1, max_length=2000)
    overrides: list[OverrideIn] = Field(default_factory=list)


class AdjustmentIn(_Section):
    delta: int = Field(ge=-3, le=3)
    justification: str = Field(min_length=1, max_length=2000)


class AssessmentIn(_Section):
    category: FactorIn[DataCategory]
    adjustments: list[AdjustmentIn] = Field(default_factory=list, max_length=10)
    identification: FactorIn[Identification]
    confidentiality: FactorIn[Loss]
    integrity: FactorIn[Loss]
    availability: FactorIn[Loss]
    malicious: FactorIn[bool]
    unintelligible: FactorIn[bool]
    mitigated: FactorIn[bool] | None = None
    disproportionate: FactorIn[bool] | None = None

    def to_assessment(self) -> Assessment:
        return Assessment(
            category=_factor(self.category),
            adjustments=tuple(Adjustment(a.delta, a.justification) for a in self.adjustments),
            identification=_factor(self.identification),
            confidentiality=_factor(self.confidentiality),
            integrity=_factor(self.integrity),
            availability=_factor(self.availability),
            malicious=_factor(self.malicious),
        )


def _factor(given: FactorIn[T]) -> Factor[T]:
    overrides = tuple(Override(o.replaced, o.reason, o.by, o.at) for o in given.overrides)
    return Factor(given.value, given.justification, overrides)


class SeverityRead(BaseModel):
    dpc: Decimal
    ei: Decimal
    cb: Decimal
    score: Decimal
    band: str


class ClockRead(BaseModel):
    awareness: datetime
    deadline: datetime
    state: str
    remaining_seconds: int


# -- the API's shapes -----------------------------------------------------------------


class IncidentOpen(_Section):
    awareness_at: AwareDatetime | None = None  # now, when the DPO opens it on learning
    details: IncidentDetails = Field(default_factory=IncidentDetails)


class IncidentAmend(_Section):
    version: int = Field(ge=1, le=MAX_VERSION)
    #: A JSON merge patch of ``IncidentDetails``: sections and members to set; null clears.
    details: dict[str, Any] = Field(default_factory=dict)
    awareness_at: AwareDatetime | None = None
    note: str | None = Field(default=None, max_length=2000)


class AssessmentSet(_Section):
    version: int = Field(ge=1, le=MAX_VERSION)
    assessment: AssessmentIn


class Versioned(_Section):
    version: int = Field(ge=1, le=MAX_VERSION)
    note: str = Field(min_length=1, max_length=2000)


class ScopeAsk(_Section):
    version: int = Field(ge=1, le=MAX_VERSION)
    kind: Literal["principals", "database-copy"] = "principals"
    #: The compromised principals' ids (default: those the incident names).
    principals: list[uuid.UUID] | None = Field(default=None, max_length=1000)
    since: AwareDatetime | None = None  # default: the earliest ``since`` named, or a day
    until: AwareDatetime | None = None  # default: no end (up to the chain's head)


class NotificationSent(_Section):
    version: int = Field(ge=1, le=MAX_VERSION)
    phase: Literal["initial", "complementary", "withdrawal"]
    sent_at: AwareDatetime
    receipt_reference: str | None = Field(default=None, max_length=120)
    delay_reason: str | None = Field(default=None, max_length=4000)


class TimelineLine(BaseModel):
    seq: int
    at: datetime
    actor_role: str
    actor_id: uuid.UUID | None
    action: str
    changes: dict[str, Any]
    note: str | None


class NotificationRead(BaseModel):
    id: uuid.UUID
    phase: str
    sent_at: datetime
    receipt_reference: str | None
    delay_reason: str | None
    digest: str


class ScopeSummary(BaseModel):
    id: uuid.UUID
    kind: str
    computed_at: datetime
    head_seq: int
    counts: dict[str, int]


class IncidentSummary(BaseModel):
    id: uuid.UUID
    reference: str
    status: str
    origin: str
    title: str | None
    opened_at: datetime
    awareness_at: datetime
    clock: ClockRead
    band: str | None
    version: int


class IncidentRead(IncidentSummary):
    details: IncidentDetails
    assessment: dict[str, Any] | None
    decision: dict[str, Any] | None
    missing: list[str]
    timeline: list[TimelineLine]
    notifications: list[NotificationRead]
    scopes: list[ScopeSummary]


class NoticesLaunch(_Section):
    version: int = Field(ge=1, le=MAX_VERSION)
    #: Why the notices go although the assessment does not require them (good practice).
    voluntary_reason: str | None = Field(default=None, max_length=2000)
