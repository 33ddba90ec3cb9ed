"""HTTP routes of the patients domain."""

from __future__ import annotations

from hippocrate.api.deps import authenticated_router

router = authenticated_router()
