"""Sending the application's emails: over SMTP when configured, else into an outbox folder.

::

    send_email(settings, "ada@example.com", "Welcome", "email-generic", {"body": "Hello"})

``settings.smtp_url`` (``smtp://host:port``, optionally ``smtp://user:password@host:port``) sends
through that server; without it each message is written as a ``.eml`` file into
``settings.outbox_dir`` (default ``<root>/.quest/outbox``), which is handy in development.
Templates are Jinja2 files in ``app/templates``: ``<template>.txt`` (required) and
``<template>.html`` (optional, sent as the HTML alternative).
"""

from __future__ import annotations

import logging
import re
import smtplib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from quest.config import Settings

log = logging.getLogger("app.mail")

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_SENDER = "quest@localhost"
SMTP_TIMEOUT = 10.0

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$"
"""What counts as a deliverable address: ``local@domain.tld``, no spaces, no display name."""

_EMAIL = re.compile(EMAIL_PATTERN)

Attachment = tuple[str, str | bytes, str]
"""``(filename, content, mimetype)``, e.g. ``("report.csv", csv_text, "text/csv")``."""


def validate_address(address: str) -> str:
    """Return *address* stripped, or raise :class:`ValueError` saying why it is unusable."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError("recipient address is empty")
    cleaned = address.strip()
    if len(cleaned) > 320 or not _EMAIL.fullmatch(cleaned):
        raise ValueError(f"recipient address {address!r} is not a valid email address")
    return cleaned


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, data: Mapping[str, Any] | None = None) -> tuple[str, str | None]:
    """The text body and, if ``<template>.html`` exists, the HTML body."""
    env = _environment()
    context = dict(data or {})
    text = env.get_template(f"{template}.txt").render(context)
    html = None
    if (TEMPLATES / f"{template}.html").is_file():
        html = env.get_template(f"{template}.html").render(context)
    return text, html


def build_message(
    settings: Settings,
    to: str,
    subject: str,
    template: str,
    data: Mapping[str, Any] | None = None,
    attachments: Sequence[Attachment] = (),
    *,
    now: datetime | None = None,
) -> EmailMessage:
    """The message :func:`send_email` would send; raises :class:`ValueError` on a bad recipient."""
    recipient = validate_address(to)
    if "\n" in subject or "\r" in subject:
        raise ValueError("the subject must be a single line")
    text, html = render(template, data)
    message = EmailMessage()
    message["From"] = str(settings.extra.get("mail_from", DEFAULT_SENDER))
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    message["Message-ID"] = make_msgid(domain="quest.local")
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, content, mimetype in attachments:
        maintype, _, subtype = mimetype.partition("/")
        if isinstance(content, str):
            if maintype != "text":
                raise ValueError(f"attachment {filename!r}: text content needs a text/* type")
            message.add_attachment(content, subtype=subtype or "plain", filename=filename)
        else:
            message.add_attachment(
                content,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=filename,
            )
    return message


def send_email(
    settings: Settings,
    to: str,
    subject: str,
    template: str,
    data: Mapping[str, Any] | None = None,
    attachments: Sequence[Attachment] = (),
    *,
    now: datetime | None = None,
) -> EmailMessage:
    """Render and send one email; returns the message sent.

    Raises :class:`ValueError` for a malformed recipient, :class:`jinja2.TemplateNotFound` for an
    unknown template and :class:`OSError` / :class:`smtplib.SMTPException` when the server fails.
    """
    message = build_message(settings, to, subject, template, data, attachments, now=now)
    if settings.smtp_url:
        _deliver_smtp(settings.smtp_url, message)
        log.info("sent %r to %s over SMTP", subject, message["To"])
    else:
        path = _deliver_outbox(outbox_dir(settings), message)
        log.info("wrote %r to %s into %s", subject, message["To"], path)
    return message


def outbox_dir(settings: Settings) -> Path:
    """Where messages go when no SMTP server is configured."""
    return settings.outbox_dir or settings.root / ".quest" / "outbox"


def _deliver_smtp(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"smtp_url {url!r} must look like smtp://host:port")
    with smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT) as smtp:
        if parts.username:
            smtp.login(unquote(parts.username), unquote(parts.password or ""))
        smtp.send_message(message)


def _deliver_outbox(folder: Path, message: EmailMessage) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.eml"
    path.write_bytes(message.as_bytes())
    return path


__all__ = [
    "EMAIL_PATTERN",
    "build_message",
    "outbox_dir",
    "render",
    "send_email",
    "validate_address",
]
