"""The audit trail's vocabulary: event tags, data categories, purposes, outcomes.

Warehouse tags its events with a ``StrEnum`` of ``source:subject:action`` names; the
trail does the same, so that a record call cannot name an event, a category or a purpose
the breach scopes and the patient's history do not know (mypy refuses a plain string).
Each value is exactly the string stored in ``audit_events`` (and hashed in its chain):
renaming a member is free, changing a value breaks the reading of history.

This module is the bottom of the graph, like ``hippocrate.errors``: it imports nothing
of Hippocrate, so the store (``db.sealed``) takes its categories and subjects from here
and still imports no domain.
"""

# Tags that name password events hold no password (ruff's S105 reads them as one).
# ruff: noqa: S105

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Category(StrEnum):
    """What kind of protected data an access touched (a breach scope asks by these)."""

    IDENTITY = "identity"  # names, birth date, sex, RPPS number
    CONTACT = "contact"  # email, phone, postal address
    NIR = "nir"  # the social security number
    HEALTH = "health"  # consultation content: subject, description, report, messages
    ATTACHMENT = "attachment"  # attachment names, types and bodies
    CREDENTIALS = "credentials"  # password hashes, TOTP secrets, recovery codes
    ACCESS = "access"  # break-glass reasons
    NOTIFICATION = "notification"  # verification codes of outbound messages


class Purpose(StrEnum):
    """Why a principal touches data, as the trail states it."""

    SELF = "self"  # the patient, their own record
    CARE = "care"  # a practitioner in a care relationship
    BREAK_GLASS = "break-glass"  # an admin or a CLI operator under a grant with a reason
    #: Staff with no purpose for patient data (support, dpo): account metadata only.
    NONE = "none"
    OPERATIONS = "operations"  # the platform maintaining itself (CLI commands)
    SETUP = "setup"  # init, the first administrator, honeytokens
    DEMO_SEED = "demo-seed"  # synthetic data of the demo
    KEY_ROTATION = "key-rotation"  # root and data key rotation
    RELEASE = "release"  # releasing a principal the guard contained
    #: Art. 34 notices sent to patients by the platform (breach response).
    NOTICE = "notice"
    IMPORT = "import"  # patients brought in from another platform (hippocrate import)


class Outcome(StrEnum):
    """How an attempt ended."""

    ALLOWED = "allowed"
    REFUSED = "refused"
    ABORTED = "aborted"  # the unit of work failed after touching data
    CONTAINED = "contained"  # the guard contained the principal


class Verb(StrEnum):
    """What the store does with a sealed value."""

    READ = "read"
    WRITE = "write"


class Subject(StrEnum):
    """What the trail calls rows of a sealed model (``__audit_subject__``),
    ``domain:subject``; an access to one is tagged ``<subject>:<verb>``."""

    PATIENT_RECORD = "patient:record"
    PATIENT_BREAK_GLASS = "patient:break-glass"
    ACCOUNT_PROFILE = "account:profile"
    ACCOUNT_NOTIFICATION = "account:notification"
    PRACTITIONER_PROFILE = "practitioner:profile"
    CONSULTATION_RECORD = "consultation:record"
    CONSULTATION_MESSAGE = "consultation:message"
    CONSULTATION_ATTACHMENT = "consultation:attachment"

    @property
    def noun(self) -> str:
        """The subject's last word, which prefixes resource ids (``record:<uuid>``)."""
        return self.value.rsplit(":", 1)[-1]


class Tag(StrEnum):
    """Every event the trail records, ``domain:subject:action``."""

    # Accesses to sealed data, grouped per unit of work: ``Subject`` x ``Verb``.
    PATIENT_RECORD_READ = "patient:record:read"
    PATIENT_RECORD_WRITE = "patient:record:write"
    PATIENT_BREAK_GLASS_READ = "patient:break-glass:read"
    PATIENT_BREAK_GLASS_WRITE = "patient:break-glass:write"
    ACCOUNT_PROFILE_READ = "account:profile:read"
    ACCOUNT_PROFILE_WRITE = "account:profile:write"
    ACCOUNT_NOTIFICATION_READ = "account:notification:read"
    ACCOUNT_NOTIFICATION_WRITE = "account:notification:write"
    PRACTITIONER_PROFILE_READ = "practitioner:profile:read"
    PRACTITIONER_PROFILE_WRITE = "practitioner:profile:write"
    CONSULTATION_RECORD_READ = "consultation:record:read"
    CONSULTATION_RECORD_WRITE = "consultation:record:write"
    CONSULTATION_MESSAGE_READ = "consultation:message:read"
    CONSULTATION_MESSAGE_WRITE = "consultation:message:write"
    CONSULTATION_ATTACHMENT_READ = "consultation:attachment:read"
    CONSULTATION_ATTACHMENT_WRITE = "consultation:attachment:write"

    # Consultations: the practitioner in charge handed one back to the queue (the
    # reason is sealed on the consultation, under the patient's key; the event says
    # only which consultation, whose, and who).
    CONSULTATION_RECORD_HANDED_BACK = "consultation:record:handed-back"

    # Patients.
    PATIENT_RECORD_SHREDDED = "patient:record:shredded"

    # Refusals: an object absent or hidden (``NotFound``, by kind), or an access rule.
    PATIENT_ACCESS_REFUSED = "patient:access:refused"
    CONSULTATION_ACCESS_REFUSED = "consultation:access:refused"
    MESSAGE_ACCESS_REFUSED = "message:access:refused"
    ATTACHMENT_ACCESS_REFUSED = "attachment:access:refused"
    ACCOUNT_ACCESS_REFUSED = "account:access:refused"
    RESOURCE_ACCESS_REFUSED = "resource:access:refused"
    ACCESS_FORBIDDEN_REFUSED = "access:forbidden:refused"
    ACCESS_NOT_AUTHENTICATED_REFUSED = "access:notauthenticated:refused"
    ACCESS_SECOND_FACTOR_REQUIRED_REFUSED = "access:secondfactorrequired:refused"

    # Sign-in, second factor, passwords.
    ACCOUNT_SIGNIN_PASSWORD_ACCEPTED = "account:signin:password-accepted"
    ACCOUNT_SIGNIN_REFUSED = "account:signin:refused"
    ACCOUNT_SIGNIN_LOCKED = "account:signin:locked"
    ACCOUNT_MFA_PASSED = "account:mfa:passed"
    ACCOUNT_MFA_REFUSED = "account:mfa:refused"
    ACCOUNT_MFA_LOCKED = "account:mfa:locked"
    ACCOUNT_MFA_ENABLED = "account:mfa:enabled"
    ACCOUNT_MFA_DISABLED = "account:mfa:disabled"
    ACCOUNT_MFA_RESET_BY_ADMIN = "account:mfa:reset-by-admin"
    ACCOUNT_RECOVERY_CODES_REGENERATED = "account:recovery-codes:regenerated"
    ACCOUNT_PASSWORD_REFUSED = "account:password:refused"
    ACCOUNT_PASSWORD_LOCKED = "account:password:locked"
    ACCOUNT_PASSWORD_CHANGED = "account:password:changed"
    ACCOUNT_PASSWORD_RESET = "account:password:reset"
    ACCOUNT_PASSWORD_RESET_BY_ADMIN = "account:password:reset-by-admin"
    ACCOUNT_EMAIL_VERIFIED = "account:email:verified"
    # A verified registration whose NIR another patient holds: recorded in both
    # patients' histories, the NIR left off the new record (docs/ACCOUNTS.md).
    ACCOUNT_NIR_WITHHELD = "account:nir:withheld"
    # A pending registration of an address withdrawn when another one of it is verified.
    ACCOUNT_REGISTRATION_WITHDRAWN = "account:registration:withdrawn"
    ACCOUNT_SESSION_OPENED = "account:session:opened"

    # Administration of accounts.
    ACCOUNT_PRACTITIONER_CREATED = "account:practitioner:created"
    ACCOUNT_SUPPORT_CREATED = "account:support:created"
    ACCOUNT_DPO_CREATED = "account:dpo:created"
    ACCOUNT_ADMIN_CREATED = "account:admin:created"
    ACCOUNT_STATUS_DISABLED = "account:status:disabled"
    ACCOUNT_STATUS_ENABLED = "account:status:enabled"
    ACCOUNT_LOCK_SET = "account:lock:set"
    ACCOUNT_LOCK_LIFTED = "account:lock:lifted"
    ACCOUNT_SESSIONS_ENDED = "account:sessions:ended"
    ACCOUNT_SESSIONS_ENDED_ALL = "account:sessions:ended-all"

    # Four-eyes approvals of administrators' actions (release, recovery, a new admin),
    # and the emails that carry a setup link to a staff member's own address.
    ADMIN_APPROVAL_REQUESTED = "admin:approval:requested"
    ADMIN_APPROVAL_APPROVED = "admin:approval:approved"
    ADMIN_APPROVAL_REFUSED = "admin:approval:refused"
    ADMIN_APPROVAL_EXPIRED = "admin:approval:expired"
    ACCOUNT_SETUP_LINK_SENT = "account:setup-link:sent"

    # Someone checked a message they received against the record of what the platform
    # sent (the public check): the email's id when one carries the code, nothing else.
    NOTIFICATION_MESSAGE_CHECKED = "notification:message:checked"

    # The guard.
    GUARD_ACCESS_REFUSED = "guard:access:refused"
    GUARD_PRINCIPAL_CONTAINED = "guard:principal:contained"
    GUARD_PRINCIPAL_RELEASED = "guard:principal:released"

    # The incident register (breach response): ids only, the incident's in resources.
    BREACH_INCIDENT_OPENED = "breach:incident:opened"
    BREACH_INCIDENT_AMENDED = "breach:incident:amended"
    BREACH_INCIDENT_ASSESSED = "breach:incident:assessed"
    BREACH_INCIDENT_NOTIFIED = "breach:incident:notified"
    BREACH_INCIDENT_CLOSED = "breach:incident:closed"
    BREACH_INCIDENT_REOPENED = "breach:incident:reopened"
    BREACH_SCOPE_COMPUTED = "breach:scope:computed"
    # Art. 34 notices: launched by the DPO, then each claimed, sent, retried, turned
    # into a letter, seen (the patient's id is the event's; no content).
    BREACH_NOTICES_REQUESTED = "breach:notices:requested"
    BREACH_NOTICES_LAUNCHED = "breach:notices:launched"
    BREACH_NOTICE_CLAIMED = "breach:notice:claimed"
    BREACH_NOTICE_SENT = "breach:notice:sent"
    BREACH_NOTICE_RETRIED = "breach:notice:retried"
    BREACH_NOTICE_POST = "breach:notice:post"
    BREACH_NOTICE_SEEN = "breach:notice:seen"
    # An operator listed the names and postal addresses of an incident's letters.
    BREACH_LETTERS_LISTED = "breach:letters:listed"

    @classmethod
    def of(cls, subject: Subject, verb: Verb) -> Tag:
        """The tag of a ``verb`` on ``subject`` (``consultation:message`` + ``read``)."""
        return cls(f"{subject}:{verb}")

    @property
    def verb(self) -> str:
        """The action, the tag's last word (``read``, ``refused``, ``created`` ...)."""
        return self.value.rsplit(":", 1)[-1]


#: The tags of reads of sealed data: what a breach scope counts as exposed.
READS = frozenset(Tag.of(subject, Verb.READ) for subject in Subject)


def refused(kind: str) -> Tag:
    """The refusal of an object of ``kind`` absent or hidden (``NotFound.kind``): a kind
    the vocabulary does not know is a ``resource``, never an unknown tag."""
    try:
        return Tag(f"{kind}:access:refused")
    except ValueError:
        return Tag.RESOURCE_ACCESS_REFUSED


_ACCESS_RULES = {
    "forbidden": Tag.ACCESS_FORBIDDEN_REFUSED,
    "notauthenticated": Tag.ACCESS_NOT_AUTHENTICATED_REFUSED,
    "secondfactorrequired": Tag.ACCESS_SECOND_FACTOR_REQUIRED_REFUSED,
}


def rule_refused(error_name: str) -> Tag:
    """The refusal by an access rule, from the error's class name (``Forbidden``,
    ``NotAuthenticated``, ``SecondFactorRequired``); any other is ``forbidden``."""
    return _ACCESS_RULES.get(error_name.lower(), Tag.ACCESS_FORBIDDEN_REFUSED)


#: What a throttled attempt proves: a sign-in's password, a second factor, a password
#: asked again (changing it, disabling the second factor).
Attempted = Literal["signin", "mfa", "password"]

#: The tags of an attempt refused while locked, and of a failed one.
ATTEMPTS: dict[Attempted, tuple[Tag, Tag]] = {
    "signin": (Tag.ACCOUNT_SIGNIN_LOCKED, Tag.ACCOUNT_SIGNIN_REFUSED),
    "mfa": (Tag.ACCOUNT_MFA_LOCKED, Tag.ACCOUNT_MFA_REFUSED),
    "password": (Tag.ACCOUNT_PASSWORD_LOCKED, Tag.ACCOUNT_PASSWORD_REFUSED),
}

_CREATED = {
    "practitioner": Tag.ACCOUNT_PRACTITIONER_CREATED,
    "support": Tag.ACCOUNT_SUPPORT_CREATED,
    "dpo": Tag.ACCOUNT_DPO_CREATED,
    "admin": Tag.ACCOUNT_ADMIN_CREATED,
}


def account_created(role: str) -> Tag:
    """The creation of a staff account of ``role``; ``ValueError`` for a patient's
    (registration is recorded by what it seals) or an unknown role."""
    try:
        return _CREATED[role]
    except KeyError:
        raise ValueError(f"no creation event for role {role!r}") from None
