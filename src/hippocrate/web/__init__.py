"""The web pages' kit: the cookie session, CSRF, the Jinja2 environment, HTML errors.

Pages are server-rendered (``<domain>/pages.py`` beside ``<domain>/api.py``, templates
under ``templates/<domain>/``) and call the same services, through the same access
policy and the same unit of work, as the API: this package adds a way to carry the
session (a cookie instead of a bearer token), never a way around a check. The API
never reads the cookie and the pages never read a bearer token, so a cross-site form
can reach no API route, and every page route checks CSRF unless it is exempted by name.
"""
