"""The demo's consultations: played by the guard's clinic (``hippocrate.guard.clinic``),
which the honeytokens live by too, so that both come from one generator."""

from hippocrate.guard.clinic import Clinic, SeedConflict

__all__ = ["Clinic", "SeedConflict"]
