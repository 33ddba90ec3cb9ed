"""Pydantic shapes of the consultations domain, and the platform's fixed catalogue:
specialties and the pre-consultation questionnaire."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from hippocrate.consultations.models import ConsultationStatus
from hippocrate.schemas import Output, StrictInput

# -- the catalogue ---------------------------------------------------------------------

# Specialty codes: plaintext on practitioners (public in the RPPS directory) and on a
# consultation while it waits (the queue routes by them), sealed once it leaves.
SPECIALTIES: dict[str, str] = {
    "general-practice": "Médecine générale",
    "dermatology": "Dermatologie",
    "paediatrics": "Pédiatrie",
    "psychiatry": "Psychiatrie",
    "gynaecology": "Gynécologie",
    "cardiology": "Cardiologie",
}


@dataclass(frozen=True)
class Question:
    code: str
    label: str
    kind: Literal["choice", "text"]
    required: bool
    choices: tuple[str, ...] = ()
    max_length: int = 1000


QUESTIONS: tuple[Question, ...] = (
    Question(
        "symptoms_duration",
        "Depuis combien de temps avez-vous ces symptômes ?",
        "choice",
        required=True,
        choices=(
            "less_than_a_day",
            "1_to_3_days",
            "4_to_7_days",
            "1_to_4_weeks",
            "more_than_a_month",
            "no_symptoms",
        ),
    ),
    Question(
        "current_treatments",
        "Quels traitements prenez-vous actuellement ? (« aucun » sinon)",
        "text",
        required=True,
    ),
    Question(
        "allergies",
        "Avez-vous des allergies connues ? (« aucune » sinon)",
        "text",
        required=True,
    ),
    Question(
        "pregnancy",
        "Êtes-vous enceinte ou susceptible de l'être ?",
        "choice",
        required=True,
        choices=("yes", "no", "unsure", "not_applicable"),
    ),
    Question(
        "other",
        "Autre chose que le médecin devrait savoir ?",
        "text",
        required=False,
        max_length=2000,
    ),
)
QUESTIONS_BY_CODE = {q.code: q for q in QUESTIONS}

# Acts are recorded as NGAP/CCAM-style codes (e.g. TCG, TC, TE2): capital letters and
# digits, so that nothing but a code can be written there.
ACT_PATTERN = r"^[A-Z][A-Z0-9]{1,12}$"


def check_answers(answers: dict[str, str]) -> dict[str, str]:
    """The answers, stripped, if they fit the questionnaire; ``ValueError`` naming the
    question (never the answer) otherwise."""
    unknown = sorted(set(answers) - set(QUESTIONS_BY_CODE))
    if unknown:
        raise ValueError(f"unknown questions: {', '.join(unknown)}")
    cleaned: dict[str, str] = {}
    for question in QUESTIONS:
        value = answers.get(question.code)
        value = value.strip() if isinstance(value, str) else None
        if not value:
            if question.required:
                raise ValueError(f"question {question.code!r} needs an answer")
            continue
        if question.kind == "choice" and value not in question.choices:
            raise ValueError(
                f"question {question.code!r} takes one of: {', '.join(question.choices)}"
            )
        if len(value) > question.max_length:
            raise ValueError(
                f"the answer to {question.code!r} is longer than {question.max_length} characters"
            )
        cleaned[question.code] = value
    return cleaned


class QuestionRead(Output):
    code: str
    label: str
    kind: Literal["choice", "text"]
    required: bool
    choices: list[str]


class CatalogueRead(Output):
    specialties: dict[str, str]
    questions: list[QuestionRead]


def catalogue() -> CatalogueRead:
    return CatalogueRead(
        specialties=SPECIALTIES,
        questions=[
            QuestionRead(
                code=q.code,
                label=q.label,
                kind=q.kind,
                required=q.required,
                choices=list(q.choices),
            )
            for q in QUESTIONS
        ],
    )


# -- input -----------------------------------------------------------------------------


class ConsultationCreate(StrictInput):
    specialty: str = Field(max_length=64)
    subject: str = Field(min_length=3, max_length=200)
    description: str = Field(min_length=1, max_length=10_000)
    questionnaire: dict[str, str] = Field(max_length=len(QUESTIONS))

    @field_validator("specialty")
    @classmethod
    def _known_specialty(cls, value: str) -> str:
        if value not in SPECIALTIES:
            raise ValueError(f"unknown specialty; one of: {', '.join(SPECIALTIES)}")
        return value

    @field_validator("questionnaire")
    @classmethod
    def _answers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_answers(value)


class MessageCreate(StrictInput):
    body: str = Field(default="", max_length=20_000)


class CloseInput(StrictInput):
    report: str = Field(max_length=50_000, description="The compte rendu")
    prescription: str | None = Field(default=None, max_length=20_000)
    acts: list[str] = Field(min_length=1, max_length=10, description="Act codes, e.g. TCG")

    @field_validator("report")
    @classmethod
    def _report_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a report is required to close a consultation")
        return value

    @field_validator("prescription")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @field_validator("acts")
    @classmethod
    def _act_codes(cls, value: list[str]) -> list[str]:
        codes = [code.strip().upper() for code in value]
        for code in codes:
            if not re.fullmatch(ACT_PATTERN, code):
                raise ValueError("an act is a code of capital letters and digits, e.g. TCG")
        return codes


class IncidentCreate(StrictInput):
    description: str = Field(min_length=3, max_length=2_000)


# -- output ----------------------------------------------------------------------------


class PractitionerIdentity(Output):
    """Who answered: the identity French telemedicine rules require on the record."""

    id: uuid.UUID
    given_names: str
    family_name: str
    rpps: str
    specialty: str


class Incident(Output):
    recorded_at: datetime
    description: str


class AttachmentRead(Output):
    id: uuid.UUID
    filename: str
    media_type: str
    size: int
    created_at: datetime


class MessageRead(Output):
    id: uuid.UUID
    consultation_id: uuid.UUID
    author: Literal["patient", "practitioner"]
    created_at: datetime
    body: str
    attachments: list[AttachmentRead]


class ConsultationSummary(Output):
    id: uuid.UUID
    # Null only in an admin's list, for one out of the queue (sealed, and not opened).
    specialty: str | None
    status: ConsultationStatus
    # In lists, only the patient's own carry the subject and the dates: a practitioner's
    # list opens no patient's data (specialty and dates are sealed once out of the
    # queue), so browsing it never counts as reading many patients. The record has them.
    subject: str | None
    created_at: datetime | None
    taken_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None


class ConsultationRead(ConsultationSummary):
    patient_id: uuid.UUID
    description: str
    questionnaire: dict[str, str]
    practitioner: PractitionerIdentity | None
    report: str | None
    prescription: str | None
    acts: list[str]
    incidents: list[Incident]


class QueueEntry(Output):
    """All a practitioner learns of a waiting consultation before taking it."""

    specialty: str
    position: int
    waiting_since: datetime
    waiting_seconds: int
