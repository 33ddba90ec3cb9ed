"""Imports every model so that ``Base.metadata`` knows every table."""

from hippocrate.access.models import BreakGlassGrant
from hippocrate.audit.models import AuditEvent, AuditHead
from hippocrate.consultations.models import Attachment, CareRelationship, Consultation, Message
from hippocrate.db.base import Base
from hippocrate.guard.models import HoneytokenMarker
from hippocrate.identity.models import Account, AccountToken, AuthSession, Practitioner, Throttle
from hippocrate.keyring.models import DataKeyRecord, RootRotation
from hippocrate.notify.models import OutboundEmail
from hippocrate.patients.models import Patient

__all__ = [
    "Account",
    "AccountToken",
    "Attachment",
    "AuditEvent",
    "AuditHead",
    "AuthSession",
    "Base",
    "BreakGlassGrant",
    "CareRelationship",
    "Consultation",
    "DataKeyRecord",
    "HoneytokenMarker",
    "Message",
    "OutboundEmail",
    "Patient",
    "Practitioner",
    "RootRotation",
    "Throttle",
]
