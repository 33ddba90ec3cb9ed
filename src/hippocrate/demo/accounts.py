"""The demo's accounts: made by ``hippocrate.guard.people``, as the honeytokens are."""

from hippocrate.guard.people import (
    RPPS_PREFIX,
    STAFF_DOMAIN,
    AccountMaker,
    DemoAccount,
    new_password,
    rpps_number,
)

__all__ = [
    "RPPS_PREFIX",
    "STAFF_DOMAIN",
    "AccountMaker",
    "DemoAccount",
    "new_password",
    "rpps_number",
]
