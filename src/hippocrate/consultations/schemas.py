"""Pydantic shapes of the consultations domain, and the platform's fixed catalogue:
specialties and the pre-consultation questionnaire.

The questionnaire's labels (questions and choices) are English in the code, marked for
the catalogues, and answered in the request's language (French by default): see
:mod:`hippocrate.i18n`. Answers are stored as codes, whatever the language.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from hippocrate.consultations.models import ConsultationStatus
from hippocrate.errors import InvalidField
from hippocrate.i18n import DEFAULT, _n, gettext
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
#: The same names in English, marked for the catalogues: the catalogue route answers
#: them in the request's language (``SPECIALTIES``, French, is what documents print;
#: tests/api/test_languages.py checks that the French catalogue says the same).
SPECIALTY_NAMES: dict[str, str] = {
    "general-practice": _n("General practice"),
    "dermatology": _n("Dermatology"),
    "paediatrics": _n("Paediatrics"),
    "psychiatry": _n("Psychiatry"),
    "gynaecology": _n("Gynaecology"),
    "cardiology": _n("Cardiology"),
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
        _n("How long have you had these symptoms?"),
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
        _n('What treatments are you taking at the moment? ("none" otherwise)'),
        "text",
        required=True,
    ),
    Question(
        "allergies",
        _n('Do you have any known allergies? ("none" otherwise)'),
        "text",
        required=True,
    ),
    Question(
        "pregnancy",
        _n("Are you pregnant, or could you be?"),
        "choice",
        required=True,
        choices=("yes", "no", "unsure", "not_applicable"),
    ),
    Question(
        "other",
        _n("Anything else the doctor should know?"),
        "text",
        required=False,
        max_length=2000,
    ),
)
QUESTIONS_BY_CODE = {q.code: q for q in QUESTIONS}

#: The label of each choice a question offers, in English (marked for the catalogues;
#: the answers are stored as codes).
CHOICE_LABELS: dict[str, dict[str, str]] = {
    "symptoms_duration": {
        "less_than_a_day": _n("Less than a day"),
        "1_to_3_days": _n("1 to 3 days"),
        "4_to_7_days": _n("4 to 7 days"),
        "1_to_4_weeks": _n("1 to 4 weeks"),
        "more_than_a_month": _n("More than a month"),
        "no_symptoms": _n("No symptoms"),
    },
    "pregnancy": {
        "yes": _n("Yes"),
        "no": _n("No"),
        "unsure": _n("I don't know"),
        "not_applicable": _n("Not applicable"),
    },
}


def answer_label(code: str, answer: str, language: str = DEFAULT) -> str:
    """The label of an answer in ``language``: a choice's label, a text as written (a
    patient's text is never looked up in the catalogues)."""
    label = CHOICE_LABELS.get(code, {}).get(answer)
    return answer if label is None else gettext(label, language)


def question_label(question: Question, language: str = DEFAULT) -> str:
    """The label of ``question`` in ``language``."""
    return gettext(question.label, language)


# Acts are recorded as NGAP/CCAM-style codes (e.g. TCG, TC, TE2): capital letters and
# digits, so that nothing but a code can be written there.
ACT_PATTERN = r"^[A-Z][A-Z0-9]{1,12}$"


def check_answers(answers: dict[str, str]) -> dict[str, str]:
    """The answers, stripped, if they fit the questionnaire; ``ValueError`` naming the
    question (never the answer) otherwise."""
    unknown = sorted(set(answers) - set(QUESTIONS_BY_CODE))
    if unknown:
        raise InvalidField(_n("unknown questions: {questions}"), questions=", ".join(unknown))
    cleaned: dict[str, str] = {}
    for question in QUESTIONS:
        value = answers.get(question.code)
        value = value.strip() if isinstance(value, str) else None
        if not value:
            if question.required:
                raise InvalidField(_n("question {code!r} needs an answer"), code=question.code)
            continue
        if question.kind == "choice" and value not in question.choices:
            raise InvalidField(
                _n("question {code!r} takes one of: {choices}"),
                code=question.code,
                choices=", ".join(question.choices),
            )
        if len(value) > question.max_length:
            raise InvalidField(
                _n("the answer to {code!r} is longer than {maximum} characters"),
                code=question.code,
                maximum=question.max_length,
            )
        cleaned[question.code] = value
    return cleaned


class QuestionRead(Output):
    code: str
    label: str
    kind: Literal["choice", "text"]
    required: bool
    choices: list[str]
    # The label of each choice in the answer's language, by code (empty for a text
    # question).
    choice_labels: dict[str, str]


class CatalogueRead(Output):
    specialties: dict[str, str]
    questions: list[QuestionRead]


def catalogue(language: str = DEFAULT) -> CatalogueRead:
    """The catalogue, its questionnaire labelled in ``language``."""
    return CatalogueRead(
        specialties={code: gettext(SPECIALTY_NAMES[code], language) for code in SPECIALTIES},
        questions=[
            QuestionRead(
                code=q.code,
                label=question_label(q, language),
                kind=q.kind,
                required=q.required,
                choices=list(q.choices),
                choice_labels={c: answer_label(q.code, c, language) for c in q.choices},
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
            raise InvalidField(
                _n("unknown specialty; one of: {specialties}"), specialties=", ".join(SPECIALTIES)
            )
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
            raise InvalidField(_n("a report is required to close a consultation"))
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
                raise InvalidField(_n("an act is a code of capital letters and digits, e.g. TCG"))
        return codes


class HandBackInput(StrictInput):
    reason: str = Field(
        min_length=3,
        max_length=1_000,
        description="Why the consultation goes back to the queue (sealed, for the record)",
    )

    @field_validator("reason")
    @classmethod
    def _reason_not_blank(cls, value: str) -> str:
        if len(value.strip()) < 3:
            raise InvalidField(_n("a reason of at least 3 characters is required"))
        return value.strip()


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


class PatientBrief(Output):
    """Who the patient is, for the practitioner in charge: names and age in years (the
    birth date itself is not shown here)."""

    given_names: str
    family_name: str
    age: int | None


class AnswerRead(Output):
    """One questionnaire answer with its labels in the answer's language: the
    question's, and the answer's (a choice's label; a text answer as written)."""

    code: str
    question: str
    answer: str
    answer_label: str


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
    # Messages the other side wrote since the reader's last read of the messages list;
    # null for a reader who is neither side (an admin under break-glass).
    unread: int | None = None


class ConsultationRead(ConsultationSummary):
    patient_id: uuid.UUID
    # The practitioner in charge reads who the patient is (an audited read of the
    # patient's record); null for everyone else.
    patient: PatientBrief | None = None
    description: str
    questionnaire: dict[str, str]
    # The same answers, in the catalogue's order, with the questions' and choices'
    # labels.
    answers: list[AnswerRead] = Field(default_factory=list)
    practitioner: PractitionerIdentity | None
    report: str | None
    prescription: str | None
    acts: list[str]
    incidents: list[Incident]


class QueueEntry(Output):
    """All a practitioner learns of a waiting consultation before taking it, and the
    opaque id to take it with (``POST /queue/{entry}/take``)."""

    entry: str
    specialty: str
    position: int
    waiting_since: datetime
    waiting_seconds: int
