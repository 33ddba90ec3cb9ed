"""The Art. 33 dossier: what the CNIL is told, as JSON for machines, HTML and PDF in French.

The JSON follows the sections of the EDPB's common template, each item under a stable
English key; the HTML page and the PDF print the same document with French labels, so
the three never say different things. Every item of Art. 33(3) is there: the nature of
the breach with the categories and approximate numbers of people and records; the
DPO's contact; the likely consequences; the measures taken or proposed. What is still
unknown is listed (``missing``): a notification may go in phases (Art. 33(4)).

The dossier counts patients; it names none. Built from the register alone (the
incident, its latest scope's counts, its assessment): it opens nothing sealed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hippocrate.breach.clock import Clock
from hippocrate.breach.decision import Decision
from hippocrate.breach.models import Incident, IncidentNotification
from hippocrate.breach.schemas import IncidentDetails, missing

FORMAT = "hippocrate.breach-dossier.v1"
PARIS = ZoneInfo("Europe/Paris")
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
FONT = Path(__file__).resolve().parent.parent / "documents" / "fonts" / "DejaVuSans.ttf"
FONT_BOLD = FONT.with_name("DejaVuSans-Bold.ttf")

#: The French label of every item, by section then key, in the order they print.
LABELS: dict[str, tuple[str, dict[str, str]]] = {
    "general": (
        "1. Informations générales",
        {
            "reference": "Référence de l'incident",
            "title": "Intitulé",
            "summary": "Résumé",
            "status": "État",
            "phase": "Phase de la notification",
            "cross_border": "Traitement transfrontalier",
            "lead_authority": "Autorité chef de file",
            "other_member_states": "Autres États membres concernés",
        },
    ),
    "contacts": (
        "2. Contacts",
        {
            "dpo": "Délégué à la protection des données",
            "legal_representative": "Représentant légal",
        },
    ),
    "timeline": (
        "3. Chronologie",
        {
            "started_at": "Début de la violation",
            "discovered_at": "Découverte",
            "awareness_at": "Prise de connaissance (début du délai)",
            "ended_at": "Fin de la violation",
            "ongoing": "Violation en cours",
            "how_discovered": "Circonstances de la découverte",
            "deadline": "Échéance de la notification",
            "clock": "État du délai",
            "delay_reason": "Motif du retard",
        },
    ),
    "nature": (
        "4. Nature de la violation",
        {
            "confidentiality": "Perte de confidentialité",
            "integrity": "Perte d'intégrité",
            "availability": "Perte de disponibilité",
            "origin": "Origine",
            "malicious": "Acte malveillant",
            "cause": "Cause",
            "means": "Moyens employés",
            "systems": "Systèmes concernés",
            "database_copied": "Copie de la base de données",
            "principals": "Comptes compromis",
        },
    ),
    "data": (
        "5. Personnes et données concernées",
        {
            "people_categories": "Catégories de personnes",
            "people_count": "Nombre approximatif de personnes",
            "records_count": "Nombre approximatif d'enregistrements",
            "data_categories": "Catégories de données",
            "scope": "Périmètre calculé à partir du journal d'audit",
        },
    ),
    "consequences": (
        "6. Conséquences probables et gravité",
        {
            "likely": "Conséquences probables",
            "severity": "Gravité (méthode de l'ENISA)",
            "factors": "Facteurs et justifications",
        },
    ),
    "measures": (
        "7. Mesures, information des personnes, autres notifications",
        {
            "taken": "Mesures prises",
            "planned": "Mesures envisagées",
            "people_notice": "Information des personnes (art. 34)",
            "information": "Information réalisée ou prévue",
            "other_notifications": "Autres notifications",
        },
    ),
}

_CATEGORY_FR = {
    "identity": "identité",
    "contact": "coordonnées",
    "nir": "NIR",
    "health": "données de santé",
    "attachment": "pièces jointes et documents",
    "credentials": "authentifiants",
    "access": "accès",
    "notification": "notifications",
}
_PEOPLE_FR = {"patients": "patients", "practitioners": "praticiens", "staff": "personnel"}
_BAND_FR = {"low": "faible", "medium": "moyenne", "high": "élevée", "very high": "très élevée"}
_CLOCK_FR = {
    "running": "en cours",
    "overdue": "dépassé",
    "notified": "notifié dans le délai",
    "notified late": "notifié hors délai",
}


def build(
    incident: Incident,
    *,
    clock: Clock,
    decision: Decision | None,
    scope: dict[str, Any] | None,
    notifications: list[IncidentNotification],
    phase: str,
    now: datetime,
) -> dict[str, Any]:
    """The dossier as JSON (the EDPB template's sections), for ``phase``."""
    details = IncidentDetails.model_validate(incident.details)
    counts = (scope or {}).get("counts", {})
    late = next((n.delay_reason for n in notifications if n.delay_reason), None)
    people = details.data.people_count
    records = details.data.records_count
    if people is None and counts:
        people = counts.get("patients")
    if records is None and counts:
        records = counts.get("records")
    categories = [c.value for c in details.data.data_categories] or sorted(
        c for c in ("identity", "contact", "nir", "health", "attachment") if counts.get(c)
    )
    assessment = incident.assessment or {}
    return {
        "format": FORMAT,
        "generated_at": now.isoformat(),
        "general": {
            "reference": incident.reference,
            "title": details.general.title,
            "summary": details.general.summary,
            "status": incident.status.value,
            "phase": phase,
            "cross_border": details.general.cross_border,
            "lead_authority": details.general.lead_authority,
            "other_member_states": details.general.other_member_states,
        },
        "contacts": {
            "dpo": details.contacts.dpo.model_dump(mode="json"),
            "legal_representative": details.contacts.legal_representative.model_dump(mode="json"),
        },
        "timeline": {
            "started_at": _iso(details.timeline.started_at),
            "discovered_at": _iso(details.timeline.discovered_at),
            "awareness_at": incident.awareness_at.isoformat(),
            "ended_at": _iso(details.timeline.ended_at),
            "ongoing": details.timeline.ongoing,
            "how_discovered": details.timeline.how_discovered,
            "deadline": clock.deadline.isoformat(),
            "clock": clock.state.value,
            "delay_reason": late,
        },
        "nature": {
            "confidentiality": details.nature.confidentiality,
            "integrity": details.nature.integrity,
            "availability": details.nature.availability,
            "origin": details.nature.origin,
            "malicious": details.nature.malicious,
            "cause": details.nature.cause,
            "means": details.nature.means,
            "systems": details.nature.systems,
            "database_copied": details.nature.database_copied,
            "principals": len(details.nature.principals),
        },
        "data": {
            "people_categories": details.data.people_categories,
            "people_count": people,
            "records_count": records,
            "data_categories": categories,
            "scope": _scope_summary(scope),
        },
        "consequences": {
            "likely": details.consequences,
            "severity": decision.severity.as_dict() if decision else None,
            "factors": _factors(assessment),
        },
        "measures": {
            "taken": details.measures.taken,
            "planned": details.measures.planned,
            "people_notice": _notice(decision),
            "information": details.information.model_dump(mode="json"),
            "other_notifications": details.other_notifications.model_dump(mode="json"),
        },
        "missing": missing(details),
    }


def html(document: dict[str, Any]) -> str:
    """The dossier as an HTML page in French (every value escaped)."""
    return (
        _environment()
        .get_template("breach/dossier.html")
        .render(document=document, sections=printable(document))
    )


def pdf(document: dict[str, Any]) -> bytes:
    """The dossier as a PDF in French: the same sections and items as the HTML page."""
    page = FPDF(format="A4")
    page.set_title(f"Notification de violation {document['general']['reference']}")
    page.set_creator("Hippocrate")
    page.add_font("Dossier", "", str(FONT))
    page.add_font("Dossier", "B", str(FONT_BOLD))
    page.set_auto_page_break(auto=True, margin=15)
    page.add_page()
    page.set_font("Dossier", "B", 15)
    _line(page, 8, "Notification d'une violation de données personnelles (art. 33 RGPD)")
    page.set_font("Dossier", "", 9)
    _line(page, 5, f"Dossier établi le {_fr_time(document['generated_at'])}")
    for heading, items in printable(document):
        page.ln(3)
        page.set_font("Dossier", "B", 12)
        _line(page, 7, heading)
        for label, value in items:
            page.set_font("Dossier", "B", 9)
            _line(page, 5, label)
            page.set_font("Dossier", "", 9)
            _line(page, 5, value)
    if document["missing"]:
        page.ln(3)
        page.set_font("Dossier", "B", 12)
        _line(page, 7, "Éléments à compléter (notification complémentaire)")
        page.set_font("Dossier", "", 9)
        _line(page, 5, ", ".join(document["missing"]))
    return bytes(page.output())


def _line(page: FPDF, height: float, text: str) -> None:
    """One paragraph across the page, the cursor back at the left margin after it."""
    page.multi_cell(0, height, text, new_x="LMARGIN", new_y="NEXT")


# -- printing ------------------------------------------------------------------------


def printable(document: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every section's heading and its (French label, French value) lines: what the
    HTML page, the PDF and the DPO's dossier page (``breach/pages.py``) print."""
    printed = []
    for key, (heading, labels) in LABELS.items():
        section = document.get(key, {})
        printed.append(
            (heading, [(label, _fr(item, section.get(item))) for item, label in labels.items()])
        )
    return printed


def _fr(item: str, value: Any) -> str:
    """``value`` of ``item`` in French words."""
    if value is None or value in ([], {}):
        return "non renseigné"
    if isinstance(value, bool):
        return "oui" if value else "non"
    if item.endswith("_at") or item == "deadline":
        return _fr_time(value)
    formatter = _FORMATTERS.get(item)
    if formatter is not None:
        return formatter(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _fr_severity(value: dict[str, str]) -> str:
    band = _BAND_FR.get(value["band"], value["band"])
    return (
        f"SE = DPC × EI + CB = {value['dpc']} × {value['ei']} + {value['cb']} "
        f"= {value['score']} : gravité {band}"
    )


def _fr_contact(value: dict[str, str | None]) -> str:
    parts = [value.get("name"), value.get("email"), value.get("phone")]
    return " · ".join(p for p in parts if p) or "non renseigné"


def _fr_scope(value: dict[str, Any]) -> str:
    return (
        f"{value['patients']} patient(s) ; calculé le {_fr_time(value['computed_at'])} "
        f"au point {value['head_seq']} du journal"
    )


def _fr_mapping(value: dict[str, Any]) -> str:
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            shown = {k: v for k, v in item.items() if v not in (None, [], {})}
            if shown:
                lines.append(f"{key} : " + ", ".join(f"{k} {v}" for k, v in shown.items()))
        elif item not in (None, [], {}):
            lines.append(f"{key} : {_fr(key, item)}")
    return "\n".join(lines) or "non renseigné"


def _fr_time(value: str) -> str:
    moment = datetime.fromisoformat(value).astimezone(PARIS)
    return moment.strftime("%d/%m/%Y à %H:%M (heure de Paris)")


_FORMATTERS: dict[str, Callable[[Any], str]] = {
    "data_categories": lambda v: ", ".join(_CATEGORY_FR.get(c, c) for c in v),
    "people_categories": lambda v: ", ".join(_PEOPLE_FR.get(c, c) for c in v),
    "clock": lambda v: _CLOCK_FR.get(v, v),
    "severity": _fr_severity,
    "dpo": _fr_contact,
    "legal_representative": _fr_contact,
    "principals": lambda v: f"{v} compte(s) ou session(s)",
    "scope": _fr_scope,
    "factors": "\n".join,
    "people_notice": str,
    "information": _fr_mapping,
    "other_notifications": _fr_mapping,
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _scope_summary(scope: dict[str, Any] | None) -> dict[str, Any] | None:
    if not scope:
        return None
    return {
        "kind": scope["kind"],
        "computed_at": scope["computed_at"],
        "head_seq": scope["head"]["seq"],
        **scope["counts"],
    }


def _factors(assessment: dict[str, Any]) -> list[str]:
    lines = []
    for name in (
        "category",
        "identification",
        "confidentiality",
        "integrity",
        "availability",
        "malicious",
        "unintelligible",
    ):
        factor = assessment.get(name)
        if factor:
            lines.append(f"{name} = {factor['value']} : {factor['justification']}")
            for override in factor.get("overrides", []):
                lines.append(
                    f"  modifié (auparavant {override['replaced']}) par {override['by']} : "
                    f"{override['reason']}"
                )
    for adjustment in assessment.get("adjustments", []):
        lines.append(f"ajustement {adjustment['delta']:+d} : {adjustment['justification']}")
    return lines


def _notice(decision: Decision | None) -> str | None:
    if decision is None:
        return None
    if decision.notify_people:
        return "Requise : chaque personne concernée est informée."
    if decision.exemption is not None:
        letter = decision.exemption.value
        public = (
            " ; une communication publique la remplace" if decision.public_communication else ""
        )
        return f"Non requise : exception de l'article 34, paragraphe 3, point {letter}){public}."
    return "Non requise : le risque n'est pas élevé (article 34, paragraphe 1)."


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
