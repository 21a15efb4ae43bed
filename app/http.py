"""Outgoing HTTP for the application's scripts: small wrappers over httpx with explicit timeouts.

A response with a 4xx or 5xx status raises :class:`httpx.HTTPStatusError`, a connection or
timeout problem the matching :class:`httpx.TransportError`; both derive from
:class:`httpx.HTTPError`.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from functools import cache
from typing import Any

import httpx

DEFAULT_TIMEOUT = 10.0
USER_AGENT = "quest-app/0.1"


def get(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET *url*; raise unless the answer is a success (2xx, or a redirect followed to one)."""
    return _request("GET", url, timeout=timeout, headers=headers)


def post(
    url: str,
    json: Any = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST *json* to *url*; raise unless the answer is a success."""
    return _request("POST", url, timeout=timeout, headers=headers, json=json)


def _request(
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None,
    json: Any = None,
) -> httpx.Response:
    sent = {"User-Agent": USER_AGENT, **(headers or {})}
    with httpx.Client(timeout=timeout, follow_redirects=True, verify=_tls()) as client:
        response = client.request(method, url, headers=sent, json=json)
    response.raise_for_status()
    return response


@cache
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every request: building one costs tens of milliseconds."""
    return httpx.create_ssl_context()


def describe(error: BaseException) -> str:
    """A one-line reason for an HTTP failure, for logs, alerts and ``last_error`` columns."""
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        return f"HTTP {response.status_code} {response.reason_phrase} from {error.request.url}"
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    if isinstance(error, httpx.ConnectError):
        return f"connection failed: {error}"
    return f"{type(error).__name__}: {error}"


__all__ = ["DEFAULT_TIMEOUT", "describe", "get", "post"]
