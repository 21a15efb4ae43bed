"""process-email-queue, send-daily-digest and export-monthly-report against a real SMTP server."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy

import pytest
from click.testing import CliRunner
from conftest_servers import NOW, pattern_quest, refused_port_fixture, smtp_fixture  # noqa: F401
from sqlalchemy import select

from app.mail import send_email
from app.models import Activity, Customer, EmailQueue, EmailStatus, Order, OrderStatus, User
from quest.cli import cli
from quest.testing import project_settings

T0 = datetime.fromisoformat(NOW)


def _queue(quest, *emails: dict) -> None:
    with quest.store.sessions.begin() as db:
        for n, values in enumerate(emails):
            db.add(
                EmailQueue(
                    **{
                        "subject": f"Message {n}",
                        "template": "email-generic",
                        "data": {"body": f"Body {n}"},
                        "created_at": T0 - timedelta(minutes=60 - n),
                        **values,
                    }
                )
            )


def _emails(quest) -> dict[str, EmailQueue]:
    with quest.store.sessions() as db:
        return {e.to: e for e in db.scalars(select(EmailQueue))}


def test_email_queue_sends_by_priority_then_age(tmp_path, database_url, smtp):
    with pattern_quest(tmp_path, database_url, smtp_url=smtp.url) as quest:
        _queue(
            quest,
            {"to": "low-old@example.com", "priority": 0},
            {"to": "high@example.com", "priority": 5},
            {"to": "low-new@example.com", "priority": 0},
            {"to": "done@example.com", "status": EmailStatus.sent},
            {"to": "not-an-address", "priority": 9},
        )

        first = quest.run("process-email-queue", {"batch_size": 2})
        assert first.ok, first.error
        assert first.result == {"sent": 1, "failed": 1}
        emails = _emails(quest)
        bad = emails["not-an-address"]
        assert bad.status is EmailStatus.failed
        assert bad.attempts == 1
        assert "not a valid email address" in bad.last_error
        assert emails["high@example.com"].status is EmailStatus.sent
        assert emails["high@example.com"].sent_at == T0
        assert emails["low-old@example.com"].status is EmailStatus.pending

        rest = quest.run("process-email-queue")
        assert rest.ok, rest.error
        assert rest.result == {"sent": 2, "failed": 0}

    assert [m.recipients for m in smtp.messages] == [
        ["high@example.com"],
        ["low-old@example.com"],
        ["low-new@example.com"],
    ]
    assert [m.subject for m in smtp.messages] == ["Message 1", "Message 0", "Message 2"]
    assert "Body 1" in smtp.messages[0].text()
    assert emails["done@example.com"].attempts == 0


def test_email_queue_marks_failures_when_smtp_is_unreachable(tmp_path, database_url, refused_port):
    with pattern_quest(
        tmp_path, database_url, smtp_url=f"smtp://127.0.0.1:{refused_port}"
    ) as quest:
        _queue(quest, {"to": "a@example.com"}, {"to": "b@example.com"})

        outcome = quest.run("process-email-queue")
        assert outcome.ok, outcome.error
        assert outcome.result == {"sent": 0, "failed": 2}
        for email in _emails(quest).values():
            assert email.status is EmailStatus.failed
            assert email.attempts == 1
            assert "ConnectionRefusedError" in email.last_error

        # The other scripts keep going.
        assert quest.run("warm-dashboard-cache").ok
        assert quest.run("purge-deleted-records").ok


def test_email_queue_writes_eml_files_without_smtp(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        _queue(quest, {"to": "ada@example.com", "data": {"body": "Hello from the outbox"}})
        outcome = quest.run("process-email-queue")
    assert outcome.ok, outcome.error
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    message = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["To"] == "ada@example.com"
    assert "Hello from the outbox" in message.get_body(("plain",)).get_content()


def test_email_queue_unknown_template_fails_that_email_only(tmp_path, database_url, smtp):
    with pattern_quest(tmp_path, database_url, smtp_url=smtp.url) as quest:
        _queue(
            quest, {"to": "x@example.com", "template": "no-such-template"}, {"to": "y@example.com"}
        )
        outcome = quest.run("process-email-queue")
        assert outcome.result == {"sent": 1, "failed": 1}
        assert "no-such-template" in _emails(quest)["x@example.com"].last_error
    assert [m.recipients for m in smtp.messages] == [["y@example.com"]]


def test_daily_digest_goes_to_subscribers_with_recent_activity(tmp_path, database_url, smtp):
    with pattern_quest(tmp_path, database_url, smtp_url=smtp.url) as quest:
        with quest.store.sessions.begin() as db:
            busy = User(
                email="busy@example.com",
                full_name="Busy Bee",
                digest_enabled=True,
                created_at=T0 - timedelta(days=100),
            )
            quiet = User(
                email="quiet@example.com",
                full_name="Quiet One",
                digest_enabled=True,
                created_at=T0 - timedelta(days=100),
            )
            optout = User(
                email="optout@example.com",
                full_name="Opted Out",
                digest_enabled=False,
                created_at=T0 - timedelta(days=100),
            )
            db.add_all([busy, quiet, optout])
            db.flush()
            for hours, user in [
                (1, busy),
                (5, busy),
                (23, busy),
                (30, busy),
                (48, quiet),
                (2, optout),
            ]:
                db.add(
                    Activity(
                        user_id=user.id,
                        kind="comment",
                        description=f"{user.full_name} activity {hours}h ago",
                        created_at=T0 - timedelta(hours=hours),
                    )
                )

        outcome = quest.run("send-daily-digest")

    assert outcome.ok, outcome.error
    assert outcome.result == {"subscribers": 2, "sent": 1}
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message.recipients == ["busy@example.com"]
    assert message.subject == "Your daily digest — 3 updates"
    text = message.text()
    assert "Hello Busy Bee" in text
    assert "activity 23h ago" in text
    assert "activity 30h ago" not in text
    html = message.message.get_body(("html",)).get_content()
    assert "<li>" in html


def _orders(quest) -> None:
    with quest.store.sessions.begin() as db:
        ada = Customer(full_name="Ada Lovelace", email="ada@example.com")
        bob = Customer(full_name="Bob, the Builder", email="bob@example.com")
        db.add_all([ada, bob])
        db.flush()
        rows = [
            (ada, "10.00", OrderStatus.completed, "2026-01-31T23:59:59+00:00"),
            (ada, "19.99", OrderStatus.completed, "2026-02-01T00:00:00+00:00"),
            (bob, "5.50", OrderStatus.refunded, "2026-02-14T09:30:00+00:00"),
            (ada, "100.00", OrderStatus.pending, "2026-02-28T23:59:59+00:00"),
            (bob, "7.00", OrderStatus.completed, "2026-03-01T00:00:00+00:00"),
        ]
        for customer, amount, status, at in rows:
            db.add(
                Order(
                    customer_id=customer.id,
                    amount=Decimal(amount),
                    status=status,
                    created_at=datetime.fromisoformat(at),
                )
            )


def test_monthly_report_mails_last_months_orders_as_csv(tmp_path, database_url, smtp):
    with pattern_quest(tmp_path, database_url, smtp_url=smtp.url) as quest:
        _orders(quest)
        outcome = quest.run("export-monthly-report", {"recipient_email": "boss@example.com"})

    assert outcome.ok, outcome.error
    assert outcome.result["orders"] == 3
    assert outcome.result["total"] == "125.49"
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message.recipients == ["boss@example.com"]
    assert message.subject == "Monthly Report — February 2026"
    assert "Orders: 3" in message.text()
    attachments = message.attachments()
    assert list(attachments) == ["report-february-2026.csv"]
    mimetype, content = attachments["report-february-2026.csv"]
    assert mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0] == ["Order ID", "Customer", "Amount", "Status", "Date"]
    assert [r[1:] for r in rows[1:]] == [
        ["Ada Lovelace", "19.99", "completed", "2026-02-01T00:00:00+00:00"],
        ["Bob, the Builder", "5.50", "refunded", "2026-02-14T09:30:00+00:00"],
        ["Ada Lovelace", "100.00", "pending", "2026-02-28T23:59:59+00:00"],
    ]


def test_monthly_report_in_january_covers_december(tmp_path, database_url, smtp):
    with pattern_quest(
        tmp_path, database_url, now="2026-01-01T06:00:00+00:00", smtp_url=smtp.url
    ) as quest:
        outcome = quest.run("export-monthly-report")
    assert outcome.ok, outcome.error
    assert outcome.result["orders"] == 0
    assert smtp.messages[0].recipients == ["admin@example.com"]
    assert smtp.messages[0].subject == "Monthly Report — December 2025"
    assert "report-december-2025.csv" in smtp.messages[0].attachments()


def test_monthly_report_rejects_a_malformed_recipient_at_the_cli(tmp_path, database_url, smtp):
    with pattern_quest(tmp_path, database_url, smtp_url=smtp.url) as quest:
        result = CliRunner().invoke(
            cli, ["run", "export-monthly-report", "--recipient-email", "boss at example"], obj=quest
        )
    assert result.exit_code == 2, result.output
    assert "--recipient-email" in result.output
    assert smtp.messages == []


def test_monthly_report_fails_clearly_when_smtp_is_unreachable(
    tmp_path, database_url, refused_port
):
    with pattern_quest(
        tmp_path, database_url, smtp_url=f"smtp://127.0.0.1:{refused_port}"
    ) as quest:
        outcome = quest.run("export-monthly-report")
    assert not outcome.ok
    assert "ConnectionRefusedError" in outcome.error


def test_send_email_helper_validates_and_attaches(tmp_path, smtp):
    settings = project_settings(tmp_path, smtp_url=smtp.url)
    with pytest.raises(ValueError, match="'ada at example' is not a valid email address"):
        send_email(settings, "ada at example", "Hi", "email-generic", {"body": "x"})
    with pytest.raises(ValueError, match="not a valid email address"):
        send_email(settings, "ada@example.com\nBcc: eve@example.com", "Hi", "email-generic")
    assert smtp.messages == []

    send_email(
        settings,
        "ada@example.com",
        "Numbers",
        "email-generic",
        {"body": "See attached."},
        attachments=[
            ("n.csv", "a,b\n1,2\n", "text/csv"),
            ("blob.bin", b"\x00\x01", "application/octet-stream"),
        ],
    )
    (message,) = smtp.messages
    assert message.recipients == ["ada@example.com"]
    assert "See attached." in message.text()
    parts = {p.get_filename(): p for p in message.message.iter_attachments()}
    assert parts["n.csv"].get_content().splitlines() == ["a,b", "1,2"]
    assert parts["blob.bin"].get_content() == b"\x00\x01"


def test_send_email_defaults_to_the_project_outbox(tmp_path):
    settings = project_settings(tmp_path)
    assert settings.smtp_url is None and settings.outbox_dir is None
    send_email(settings, "ada@example.com", "Hi", "email-generic", {"body": "x"})
    assert len(list((tmp_path / ".quest" / "outbox").glob("*.eml"))) == 1
