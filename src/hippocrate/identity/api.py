"""HTTP routes of the identity domain."""

from __future__ import annotations

from hippocrate.api.deps import authenticated_router

router = authenticated_router()
