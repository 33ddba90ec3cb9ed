"""Imports every model so that ``Base.metadata`` knows every table."""

from hippocrate.db.base import Base
from hippocrate.keyring.models import DataKeyRecord, RootRotation
from hippocrate.patients.models import Patient

__all__ = ["Base", "DataKeyRecord", "Patient", "RootRotation"]
