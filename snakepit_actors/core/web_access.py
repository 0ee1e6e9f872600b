"""Who may see a node's web view: the bearer of the node's web token.

    Authorization: Bearer TOKEN        (scripts, the JSON API, the event stream)
    cookie snakepit_web=TOKEN          (a browser, after its first visit)
    ?token=TOKEN on a page visit       (the URL the node prints: it sets the cookie)

``check_access`` decides, from what a request carries: granted, 401 (no credential at all)
or 403 (a wrong one). A token given in the query sets an HttpOnly, SameSite=Strict cookie so
the address bar and the page's own requests no longer carry it. Tokens are compared in
constant time. No web framework here: the app (``snakepit_actors.web``) asks this module.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

#: The cookie that carries the token after a first visit with ``?token=``.
COOKIE_NAME = "snakepit_web"
#: Tokens shorter than this are refused in the configuration (guessable).
MIN_TOKEN_CHARS = 16


def new_token() -> str:
    """A fresh random token (43 URL-safe characters: 256 bits)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Access:
    """The decision: ``status`` 200 (granted), 401 (no credential) or 403 (wrong one);
    ``set_cookie``: the token came in the query and should become the cookie."""

    status: int
    set_cookie: bool = False
    reason: str = ""

    @property
    def granted(self) -> bool:
        return self.status == 200


def check_access(token: str, *, authorization: str | None = None, cookie: str | None = None,
                 query: str | None = None) -> Access:
    """Whether a request carrying these credentials may pass. The first one present decides
    (the header, then the query, then the cookie): a page visit with a new ``?token=`` is
    judged by it, not by an old cookie.

    Args:
        token: the node's token ("" refuses everything).
        authorization: the ``Authorization`` header, if any ("Bearer TOKEN").
        cookie: the ``COOKIE_NAME`` cookie, if any.
        query: the ``token`` query parameter, if any.
    """
    if authorization:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return Access(401, reason="the Authorization header must be 'Bearer TOKEN'")
        return _compare(token, given.strip(), set_cookie=False)
    if query:
        return _compare(token, query, set_cookie=True)
    if cookie:
        return _compare(token, cookie, set_cookie=False)
    return Access(401, reason="no token: open the URL the node printed (with ?token=...) or "
                              "send 'Authorization: Bearer TOKEN'")


def _compare(token: str, given: str, set_cookie: bool) -> Access:
    if token and hmac.compare_digest(token.encode(), given.encode()):
        return Access(200, set_cookie=set_cookie)
    return Access(403, reason="wrong token: the node prints its URL with the token at start")
