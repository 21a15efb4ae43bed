"""Who may see and do what: access levels, the default policy, passwords and CSRF tokens.

The dashboard is closed by default. Without an ``authorize`` callback and without a password,
only requests from the loopback interface get in; with a password (``QUEST_DASHBOARD_PASSWORD``),
every request must carry it (HTTP Basic, any user name). A mounting application passes its own
``authorize(request)``, which returns an :class:`Access` or a :class:`Grant`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request

CSRF_COOKIE = "quest_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class Access(StrEnum):
    """What a request may do."""

    full = "full"
    """See everything and act: run now, pause, resume, retry, cancel, discard."""
    read = "read"
    """See everything; actions are hidden and refused."""
    none = "none"
    """Nothing: the request is refused."""


@dataclass(frozen=True, slots=True)
class Grant:
    """An :class:`Access` and who the request is, recorded with every action it takes."""

    access: Access
    who: str | None = None


Authorize = Callable[["Request"], "Access | Grant | bool | Awaitable[Any] | None"]


def grant_of(value: Any) -> Grant:
    """Read what an ``authorize`` callback returned: an :class:`Access`, a :class:`Grant`,
    ``True`` (full) or ``False``/``None`` (no access)."""
    if isinstance(value, Grant):
        return value
    if isinstance(value, Access):
        return Grant(value)
    if value is True:
        return Grant(Access.full)
    if value is False or value is None:
        return Grant(Access.none)
    raise TypeError(
        f"authorize(request) returned {value!r}; return an Access (full, read, none), "
        f"a Grant(access, who), True or False"
    )


def is_loopback(host: str | None) -> bool:
    """Whether *host* (an address or ``localhost``) is this machine's loopback interface."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The user name and password of an HTTP Basic ``Authorization`` header."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def default_authorize(password: str | None) -> Callable[[Request], Grant]:
    """The policy without a callback: the password when one is set, else loopback only."""

    def authorize(request: Request) -> Grant:
        client = request.client.host if request.client else None
        if password:
            given = basic_credentials(request)
            if given is not None and hmac.compare_digest(
                given[1].encode("utf-8"), password.encode("utf-8")
            ):
                return Grant(Access.full, who=f"{given[0] or 'dashboard'}@{client or 'unknown'}")
            return Grant(Access.none)
        if is_loopback(client):
            return Grant(Access.full)
        return Grant(Access.none)

    return authorize


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same_token(expected: str | None, given: str | None) -> bool:
    """Whether a submitted CSRF token matches the browser's cookie (constant time)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))
