"""HTTP routes of the consultations domain."""

from __future__ import annotations

from hippocrate.api.deps import authenticated_router

router = authenticated_router()
