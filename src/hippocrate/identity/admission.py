"""Anonymous requests that cost the platform something (a registration, a password
reset), admitted per client address and overall, and the reset link's delivery after
the answer: shared by the API (``identity/api.py``) and the pages (``identity/pages.py``),
so that both ways in are throttled and answered alike.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from fastapi import Depends, Request

from hippocrate.api.client import ClientAddress
from hippocrate.api.deps import AppSettings, Now, unit_of_its_own
from hippocrate.audit.recorder import Actor
from hippocrate.identity import service, throttle
from hippocrate.identity.errors import TooManyRequests
from hippocrate.keyring.service import RECOVERY
from hippocrate.runtime import Runtime
from hippocrate.work import unit_of_work

log = logging.getLogger(__name__)

#: The words a refusal of each kind of request says (``TooManyRequests``).
WORDS = {"register": "registration", "reset": "password-reset"}


def admission(kind: str) -> Any:
    """A dependency that counts one anonymous request of ``kind`` (``register``,
    ``reset``) per client address and overall, in a unit of work of its own committed
    before the route runs, and answers 429 with ``Retry-After`` past either limit."""
    words = WORDS[kind]  # an unknown kind fails when the route is declared, not later

    def admitted(
        request: Request, settings: AppSettings, clock: Now, address: ClientAddress
    ) -> None:
        with unit_of_its_own(request) as session:
            until = throttle.admit(
                session, budget=throttle.budget(settings, kind), address=address, now=clock
            )
        if until is not None:
            raise TooManyRequests(words, until, clock)

    return Depends(admitted)


def deliver_reset_link(runtime: Runtime, *, email: str, request_id: str, now: datetime) -> None:
    """Send the reset link a request asked for, in a unit of work of its own: the
    answer was sent already, so a failure (a spent budget, a busy database) is logged,
    never shown to the caller. It spends the vault's ``recovery`` unwrap budget, never
    the one sign-in or authenticated reads need."""
    actor = Actor(role="anonymous", request_id=request_id)
    try:
        with unit_of_work(runtime, actor, budget=RECOVERY) as session:
            service.request_password_reset(
                session=session, settings=runtime.settings, email=email, now=now
            )
    except Exception:  # the caller has its answer; nothing of this may reach it
        log.warning("a password-reset link was not delivered", exc_info=True)
