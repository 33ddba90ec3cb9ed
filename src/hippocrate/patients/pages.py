"""The patients domain's pages (being built: see issue 11)."""

from __future__ import annotations

from hippocrate.web.deps import pages_router

router = pages_router()
public = pages_router(public=True)
