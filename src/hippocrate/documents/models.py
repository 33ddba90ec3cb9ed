"""Issued documents: what lets anyone check a document Hippocrate signed.

The document itself is an attachment of a message from the practitioner (sealed at
rest in the blob store under the patient's key, read through the policy like every
attachment). This table holds only what verification needs and a copy says nothing
with: a keyed digest of the code printed on the document (the provider's index key;
without it, a code cannot be tested against the copy) and the SHA-256 of the signed
file (which identifies a file only to someone who already holds it). No patient, no
consultation, no kind and no date: the attachment row links to those, under the
patient's key.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from hippocrate.db.base import Base, IdMixin


class IssuedDocument(IdMixin, Base):
    __tablename__ = "issued_documents"

    attachment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("attachments.id"), unique=True)
    code_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    content_digest: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
