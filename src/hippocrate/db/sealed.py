"""Sealed attributes: domain code reads and writes plaintext, the database gets ciphertext.

A model declares a ``LargeBinary`` column for the ciphertext and a :class:`Sealed`
descriptor for the plaintext::

    family_name_sealed: Mapped[bytes] = mapped_column("family_name", LargeBinary)
    family_name = Sealed("family_name_sealed", TEXT)

Assigning the descriptor keeps the plaintext on the instance until the session
flushes; a ``before_flush`` hook then seals every pending value with the owner's
active data key, bound to (table, column, row id), and computes the blind indexes.
Reading opens the stored value with the key version it names; any failure raises
``DecryptionError`` (never ciphertext, never partial plaintext).

Fail closed by construction: a sealed value is opened only for a session that carries
an access hook (the audit recorder, attached with the access policy's and the guard's
read check), and sealed only for a session that records writes. A session opened
without one raises :class:`UnauditedAccess` instead of decrypting: a new entry point
(a page, a job, a worker, a CLI command) inherits the guarantees or cannot read at all.
The one way around it is :func:`unsafe_unaudited`, named so that a reviewer sees it.
The session also hands the store its keys (``KEYS``): the store imports no domain.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Generic, Protocol, TypeVar, overload

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, object_session
from sqlalchemy.orm.attributes import flag_modified

from hippocrate.tags import Category, Subject, Verb
from hippocrate.vault import (
    DataKey,
    DecryptionError,
    FieldContext,
    Padding,
    Vault,
    peek_key_version,
    seal_field,
)

T = TypeVar("T")

_PENDING = "_sealed_pending"
_OPENED = "_sealed_opened"
_CONTEXTS = "_sealed_contexts"


@dataclass(frozen=True)
class Codec(Generic[T]):
    """How a plaintext value becomes bytes and back."""

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


TEXT: Codec[str] = Codec(lambda v: v.encode("utf-8"), lambda b: b.decode("utf-8"))
DATE: Codec[date] = Codec(
    lambda v: v.isoformat().encode("ascii"), lambda b: date.fromisoformat(b.decode("ascii"))
)
BYTES: Codec[bytes] = Codec(bytes, bytes)
JSON: Codec[Any] = Codec(
    lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
    json.loads,
)

#: The buckets of free text (subjects, descriptions, messages, reports): 256 bytes,
#: doubling to 4 KiB, then 4 KiB steps.
FREE_TEXT = Padding(256, doubling_until=4096)

#: ``session.info`` keys: the vault, and the :class:`KeySource` that finds data keys.
VAULT = "vault"
KEYS = "hippocrate.keys"


class KeySource(Protocol):
    """Finds the data keys of an owner for the store (the keyring implements it)."""

    def active_key(self, *, session: Session, owner: uuid.UUID) -> DataKey:
        """The key that seals new values of ``owner``."""
        ...

    def key_for(self, *, session: Session, owner: uuid.UUID, version: int) -> DataKey:
        """The key version that opens a value of ``owner``."""
        ...


class UnauditedAccess(DecryptionError):
    """A sealed value was about to be opened or sealed in a session that carries no
    audit recorder (or none that checks reads): refused, nothing decrypted."""


def vault_of(session: Session) -> Vault:
    """The vault a session was opened with (see ``db.engine.SessionFactory``)."""
    vault = session.info.get(VAULT)
    if vault is None:
        raise RuntimeError("this session has no vault: open it with the session factory")
    return vault  # type: ignore[no-any-return]


def keys_of(session: Session) -> KeySource:
    keys = session.info.get(KEYS)
    if keys is None:
        raise RuntimeError("this session has no key source: open it with the session factory")
    return keys  # type: ignore[no-any-return]


class SealedModel:
    """Mixin for models with sealed attributes.

    ``__sealed_owner__`` names the attribute holding the owner (patient) id whose data
    key seals the row; ``id`` must be a UUID primary key.
    """

    __sealed_owner__: ClassVar[str]
    __sealed_fields__: ClassVar[dict[str, Sealed[Any]]]
    #: What the audit trail calls rows of this model, ``domain:subject``: required of
    #: every model with a sealed attribute (checked when the class is made).
    __audit_subject__: ClassVar[Subject]
    #: Whether the owner is a patient (their id is the event's patient id).
    __owner_is_patient__: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Sealed):
                    fields[name] = value
        cls.__sealed_fields__ = fields
        if fields and not isinstance(getattr(cls, "__audit_subject__", None), Subject):
            raise TypeError(f"{cls.__name__} has sealed attributes: name its __audit_subject__")

    def sealed_owner_id(self) -> uuid.UUID:
        owner = getattr(self, self.__sealed_owner__)
        if owner is None:
            raise ValueError(f"{type(self).__name__}.{self.__sealed_owner__} must be set")
        return owner  # type: ignore[no-any-return]

    def audit_patient_id(self) -> uuid.UUID | None:
        """The patient whose data this row is, for the audit trail and the guard."""
        return self.sealed_owner_id() if self.__owner_is_patient__ else None


class Sealed(Generic[T]):
    """A plaintext attribute stored sealed in the column mapped by ``column_attr``.

    ``blind_index`` names an integer column to fill with the vault's blind index of
    ``normalise(value)`` under field ``index_field``. ``category`` says what kind of
    data it holds, for the audit trail (a breach scope asks by it). ``pad`` gives the
    buckets its encoded plaintexts are padded to before sealing, so that the length of
    the stored value says only the bucket (docs/CRYPTO.md lists them per field).
    """

    def __init__(
        self,
        column_attr: str,
        codec: Codec[T],
        *,
        blind_index: str | None = None,
        index_field: str | None = None,
        category: Category,
        pad: Padding | None = None,
    ) -> None:
        self.column_attr = column_attr
        self.pad = pad if pad is not None else Padding()
        self.category = category
        self.codec = codec
        self.blind_index = blind_index
        self.index_field = index_field
        self.name = ""
        self._where: tuple[str, str] | None = None  # (table, column), resolved on first use

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Sealed[T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> T | None: ...

    def __get__(self, instance: object | None, owner: type) -> Sealed[T] | T | None:
        if instance is None:
            return self
        pending = instance.__dict__.get(_PENDING)
        if pending and self.name in pending:
            return pending[self.name]  # type: ignore[no-any-return]
        blob = getattr(instance, self.column_attr)
        if blob is None:
            return None
        opened = instance.__dict__.setdefault(_OPENED, {})
        cached = opened.get(self.name)
        if cached is not None and cached[0] is blob:
            return cached[1]  # type: ignore[no-any-return]
        value = self.codec.decode(self._open(instance, blob))
        opened[self.name] = (blob, value)
        return value

    def __set__(self, instance: object, value: T | None) -> None:
        instance.__dict__.setdefault(_PENDING, {})[self.name] = value
        state = inspect(instance, raiseerr=False)
        if state is not None and state.persistent:
            # Mark the row dirty so the next flush runs and seals the pending value.
            getattr(instance, self.column_attr)
            flag_modified(instance, self.column_attr)

    def context(self, instance: object) -> FieldContext:
        """Where this field of ``instance`` lives; made once per object and field."""
        contexts = instance.__dict__.setdefault(_CONTEXTS, {})
        context: FieldContext | None = contexts.get(self.name)
        row_id = instance.id  # type: ignore[attr-defined]
        if context is None or context.row_id != row_id:
            if self._where is None:
                column = inspect(type(instance)).get_property(self.column_attr).columns[0]
                self._where = (column.table.name, column.name)
            context = FieldContext(self._where[0], self._where[1], row_id)
            contexts[self.name] = context
        return context

    def _open(self, instance: object, blob: bytes) -> bytes:
        session = object_session(instance)
        if session is None:
            raise DecryptionError(
                f"cannot open {self.name}: the object is detached from its session"
            )
        assert isinstance(instance, SealedModel)
        _notify(session, instance, self, Verb.READ)  # before decrypting: it may refuse
        version = peek_key_version(blob)
        key = keys_of(session).key_for(
            session=session, owner=instance.sealed_owner_id(), version=version
        )
        return vault_of(session).open(key, blob, self.context(instance))

    def seal_pending(self, session: Session, instance: SealedModel, value: Any) -> None:
        if value is None:
            setattr(instance, self.column_attr, None)
            if self.blind_index:
                setattr(instance, self.blind_index, None)
            return
        _notify(session, instance, self, Verb.WRITE)
        key = keys_of(session).active_key(session=session, owner=instance.sealed_owner_id())
        vault = vault_of(session)
        blob = seal_field(key, self.codec.encode(value), self.context(instance), self.pad)
        setattr(instance, self.column_attr, blob)
        instance.__dict__.setdefault(_OPENED, {})[self.name] = (blob, value)
        if self.blind_index:
            assert self.index_field is not None
            setattr(instance, self.blind_index, vault.blind_index(self.index_field, str(value)))


#: ``session.info`` key of the hook told of every sealed read and write, before it
#: happens: ``hook(instance, field, verb)``. The audit recorder installs it; it may
#: raise to refuse the access (the guard's containment). A hook whose ``checks_reads``
#: is false may only be told of writes.
ACCESS_HOOK = "hippocrate.on_access"


class AccessHook(Protocol):
    checks_reads: bool

    def __call__(self, instance: SealedModel, field: Sealed[Any], verb: Verb) -> None: ...

    def note(
        self,
        *,
        patient: uuid.UUID | None,
        subject: Subject,
        verb: Verb,
        resource: str,
        category: Category,
    ) -> None:
        """An access that does not go through a sealed attribute (attachment bodies)."""
        ...


def require_hook(session: Session, verb: Verb, what: str) -> AccessHook:
    """The session's access hook, or ``UnauditedAccess``: nothing sealed is opened
    (``verb`` "read") without a read check, nor sealed ("write") unrecorded."""
    hook: AccessHook | None = session.info.get(ACCESS_HOOK)
    if hook is None:
        raise UnauditedAccess(f"refused to {verb} {what}: this session records no access")
    if verb == Verb.READ and not hook.checks_reads:
        raise UnauditedAccess(f"refused to read {what}: this session checks no read")
    return hook


def _notify(session: Session, instance: SealedModel, field: Sealed[Any], verb: Verb) -> None:
    require_hook(session, verb, f"{type(instance).__name__}.{field.name}")(instance, field, verb)


class _Unaudited:
    """The hook of :func:`unsafe_unaudited`: allows everything, records nothing."""

    checks_reads = True

    def __init__(self, why: str) -> None:
        self.why = why

    def __call__(self, instance: SealedModel, field: Sealed[Any], verb: Verb) -> None:
        return None

    def note(
        self,
        *,
        patient: uuid.UUID | None,
        subject: Subject,
        verb: Verb,
        resource: str,
        category: Category,
    ) -> None:
        return None


def unsafe_unaudited(session: Session, why: str) -> Session:
    """Let ``session`` open and seal values with no recorder, no policy and no guard.

    Unsafe: nothing it reads reaches the audit trail or the guard. For the code that
    must touch ciphertext below the domain (benchmarks of the store itself, tests of
    the sealed format); ``why`` says which, and stays on the session for a debugger.
    Never call it from an entry point that serves a person.
    """
    if len(why.strip()) < 10:
        raise ValueError("say why this session may skip the audit trail")
    session.info[ACCESS_HOOK] = _Unaudited(why)
    return session


def seal_pending(session: Session) -> None:
    """Seal every pending plaintext of the session's new and changed objects."""
    candidates = [*session.new, *session.dirty]
    for instance in candidates:
        if not isinstance(instance, SealedModel):
            continue
        pending = instance.__dict__.pop(_PENDING, None)
        if not pending:
            continue
        if getattr(instance, "id", None) is None:
            instance.id = uuid.uuid4()  # type: ignore[attr-defined]
        for name, value in pending.items():
            type(instance).__sealed_fields__[name].seal_pending(session, instance, value)


def install(session_class: type[Session]) -> None:
    """Seal pending values on every flush of sessions of ``session_class``."""

    @event.listens_for(session_class, "before_flush")
    def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
        seal_pending(session)
