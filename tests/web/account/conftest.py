"""The browser's fixtures (``tests/browser``) for the account's pages in Chromium."""

from tests.browser.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    browser,
    context,
    page,
    playwright,
    site,
)
