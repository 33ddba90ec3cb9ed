"""Page dependencies: the cookie's session and principal, and the routers of pages.

:func:`page_principal` takes the very step the API's ``current_principal`` takes
(``hippocrate.api.deps.act_as``: second factor required, containment checked, the
audit actor and the unwrap budget set), from the session cookie instead of a bearer
token; a page has no other way to a principal. Routers of pages are built with
:func:`pages_router`: every route checks CSRF and, unless the router is declared
public, needs a principal.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from hippocrate.access.errors import NotAuthenticated
from hippocrate.access.policy import ensure_staff_role
from hippocrate.access.principal import Principal
from hippocrate.api.deps import DB, AppSettings, Now, act_as
from hippocrate.breach.notices import unseen_by_account
from hippocrate.i18n import _n
from hippocrate.identity.models import Role
from hippocrate.identity.sessions import Resolved, resolve
from hippocrate.web import cookies
from hippocrate.web.csrf import check_csrf
from hippocrate.web.render import Viewer

ROLE_LABELS = {
    Role.PATIENT: _n("Patient"),
    Role.PRACTITIONER: _n("Practitioner"),
    Role.SUPPORT: _n("Support"),
    Role.DPO: _n("Data protection officer"),
    Role.ADMIN: _n("Administrator"),
}

HOMES = {
    Role.PATIENT: "/patient",
    Role.PRACTITIONER: "/practitioner",
    Role.SUPPORT: "/account/password",  # support works from the API and the CLI
    Role.DPO: "/dpo",
    Role.ADMIN: "/admin",
}


def page_session(request: Request, db: DB, settings: AppSettings, clock: Now) -> Resolved:
    """The live session of the cookie; its second factor may still be pending."""
    token = cookies.session_token(request)
    if token is None:
        raise NotAuthenticated()
    return resolve(session=db, settings=settings, token=token, now=clock)


PageSession = Annotated[Resolved, Depends(page_session)]


def page_principal(request: Request, db: DB, resolved: PageSession) -> Principal:
    """The principal of the cookie's session, as the API's (see the module)."""
    principal = act_as(request, db, resolved)
    request.state.viewer = viewer_of(db, principal)
    return principal


PagePrincipal = Annotated[Principal, Depends(page_principal)]


def viewer_of(db: Session, principal: Principal) -> Viewer:
    return Viewer(
        role=principal.role.value,
        label=ROLE_LABELS.get(principal.role, principal.role.value),
        unseen_notices=unseen_by_account(db, principal.account_id) if principal.is_patient else 0,
    )


def home_of(role: Role | str) -> str:
    return HOMES.get(Role(role), "/")


def pages_router(*, public: bool = False, **kwargs: Any) -> APIRouter:
    """A router of pages: CSRF on every unsafe route; a principal on every route unless
    ``public`` (sign-in, registration, emailed links, the public checks)."""
    dependencies: list[Any] = [Depends(check_csrf)]
    if not public:
        dependencies.append(Depends(page_principal))
    dependencies.extend(kwargs.pop("dependencies", []))
    kwargs.setdefault("include_in_schema", False)
    return APIRouter(dependencies=dependencies, **kwargs)


def require_role(*roles: Role) -> Any:
    """A router's dependency refusing any role but ``roles`` (403, as the API's
    ``ensure_staff_role``)."""

    def _check(principal: PagePrincipal) -> None:
        ensure_staff_role(principal, *roles)

    _check.roles = frozenset(roles)  # type: ignore[attr-defined]  # read by the page matrix test
    return Depends(_check)
