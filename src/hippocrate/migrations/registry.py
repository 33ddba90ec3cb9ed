"""Every model, so that ``Base.metadata`` (and Alembic) knows every table. It lives beside
the migrations: the store (``hippocrate.db``) imports no domain."""

from hippocrate.access.models import BreakGlassGrant
from hippocrate.admin.models import FourEyesRequest
from hippocrate.audit.models import AuditEvent, AuditHead, AuditPending
from hippocrate.breach.models import (
    Incident,
    IncidentChange,
    IncidentNotification,
    IncidentScope,
    Notice,
)
from hippocrate.consultations.models import Attachment, CareRelationship, Consultation, Message
from hippocrate.db.base import Base
from hippocrate.documents.models import IssuedDocument
from hippocrate.guard.models import Containment, HoneytokenMarker, WindowRead, WindowRefusal
from hippocrate.identity.models import Account, AccountToken, AuthSession, Practitioner, Throttle
from hippocrate.interop.models import ImportProgress
from hippocrate.keyring.models import DataKeyRecord, RootRotation
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.models import Patient

__all__ = [
    "Account",
    "AccountToken",
    "Attachment",
    "AuditEvent",
    "AuditHead",
    "AuditPending",
    "AuthSession",
    "Base",
    "BreakGlassGrant",
    "CareRelationship",
    "Consultation",
    "Containment",
    "DataKeyRecord",
    "FourEyesRequest",
    "HoneytokenMarker",
    "ImportProgress",
    "Incident",
    "IncidentChange",
    "IncidentNotification",
    "IncidentScope",
    "IssuedDocument",
    "Message",
    "Notice",
    "OutboundEmail",
    "Patient",
    "Practitioner",
    "RootRotation",
    "Throttle",
    "WindowRead",
    "WindowRefusal",
]
