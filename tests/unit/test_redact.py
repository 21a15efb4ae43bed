"""Redaction: every rendering of a sensitive value is scrubbed, in text, values and log records."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quest import Input, redact
from quest.cli._common import JsonFormatter
from quest.enums import RunStatus, Trigger
from quest.redact import REDACTED, RedactingFilter, scrub, scrub_value
from quest.signals import JobEvent, emit, job_complete

SECRET = "to\\k'e\"n-é-ü-😀"
"""Quotes of both kinds, a backslash and non-ASCII: every renderer escapes it differently."""


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    redact.clear()
    yield
    redact.clear()


def stdlib_forms(secret: str) -> set[str]:
    """The ways the standard library writes *secret* inside a larger text."""
    return {
        secret,
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


def assert_clean(text: str, secret: str = SECRET) -> None:
    for form in stdlib_forms(secret):
        assert form not in text, f"{form!r} left in {text!r}"


RENDERINGS: dict[str, Callable[[str], str]] = {
    "str": str,
    "%s": lambda s: "token %s" % s,  # noqa: UP031
    "%r": lambda s: "token %r" % (s,),  # noqa: UP031
    "f-string": lambda s: f"token {s} / {s!r} / {s!a}",
    "repr": repr,
    "ascii": ascii,
    "json": json.dumps,
    "json non-ascii": lambda s: json.dumps(s, ensure_ascii=False),
    "list repr": lambda s: repr([s, 1]),
    "dict repr": lambda s: repr({"token": s}),
    "dict key repr": lambda s: str({s: 1}),
    "tuple repr": lambda s: repr((s,)),
    "set repr": lambda s: repr({s}),
    "dict json": lambda s: json.dumps({"token": s}),
    "nested json": lambda s: json.dumps({"a": [{"b": s}]}, indent=2),
    "json of repr": lambda s: json.dumps(repr({"token": s})),
    "repr of json": lambda s: repr(json.dumps({"token": s})),
    "KeyError str": lambda s: str(KeyError(s)),
    "KeyError repr": lambda s: repr(KeyError(s)),
    "bytes repr": lambda s: repr(s.encode()),
    "both quotes around": lambda s: repr("it's \"" + s + '"'),
}


@pytest.mark.parametrize("render", list(RENDERINGS.values()), ids=list(RENDERINGS))
def test_every_rendering_of_a_secret_is_scrubbed(render: Callable[[str], str]) -> None:
    text = render(SECRET)
    scrubbed = scrub(text, [SECRET])
    assert_clean(scrubbed)
    assert REDACTED in scrubbed
    with redact.active([SECRET]):
        assert scrub(text) == scrubbed


def test_scrub_keeps_the_text_around_the_secret() -> None:
    assert scrub("token=abcdef; user=ann", ["abcdef"]) == "token=***; user=ann"
    assert scrub("KeyError: 'a\\\\bcd'", ["a\\bcd"]) == "KeyError: '***'"
    assert scrub("nothing here", ["abcdef"]) == "nothing here"


def test_a_key_error_with_a_backslash() -> None:
    secret = "pa\\ss-word"
    try:
        raise KeyError(secret)
    except KeyError as exc:
        error = f"{type(exc).__name__}: {exc}"
    assert "pa\\\\ss-word" in error  # repr doubled the backslash: plain replacement misses it
    assert scrub(error, [secret]) == "KeyError: '***'"


def test_a_sensitive_dict_rendered_every_way() -> None:
    keys = {"api_key": "k-12345", "region": "eu", "n": 98765, "deep": {"x": ["inner-val"]}}
    for text in (
        repr(keys),
        str(keys),
        json.dumps(keys),
        json.dumps(keys, indent=2, sort_keys=True),
        json.dumps(keys, separators=(",", ":")),
        f"config {keys!r}",
    ):
        scrubbed = scrub(text, [keys])
        for leaf in ("k-12345", "98765", "inner-val"):
            assert leaf not in scrubbed, scrubbed
    # the whole value is scrubbed even where its leaves are short
    small = {"a": 1, "b": "xy"}
    assert scrub(f"got {small} and {json.dumps(small)}", [small]) == "got *** and ***"


def test_a_sensitive_number() -> None:
    assert scrub("pin 482913, again 482913.", [482913]) == "pin ***, again ***."
    assert scrub("ratio 0.31415", [0.31415]) == "ratio ***"


def test_values_shorter_than_four_characters_are_not_scrubbed_from_text() -> None:
    """The documented limit: a 3-digit PIN would wipe every digit of every line."""
    assert redact.forms("abc") == frozenset()
    assert redact.forms(123) == frozenset()
    assert redact.forms(True) == frozenset()
    assert scrub("pin abc at 12:34", ["abc", 12]) == "pin abc at 12:34"
    assert scrub("code abcd", ["abcd"]) == "code ***"


def test_a_date_secret() -> None:
    from datetime import date

    assert scrub("born 1990-05-17", [date(1990, 5, 17)]) == "born ***"


def test_a_replacement_never_joins_a_secret_together() -> None:
    # replacing the first secret spells out the second one: that is replaced too
    assert scrub("<xabcdy>", ["abcd", "x***y"]) == "<***>"


# -- the registry --------------------------------------------------------------------------------


def test_the_registry_scrubs_while_a_run_is_active() -> None:
    assert not redact.is_active()
    assert scrub("token abcdef") == "token abcdef"
    with redact.active(["abcdef"]):
        assert redact.is_active()
        assert scrub("token abcdef") == "token ***"
        with redact.active(["ghijkl"]):
            assert scrub("abcdef ghijkl") == "*** ***"
        assert scrub("abcdef ghijkl") == "*** ghijkl"
    assert scrub("token abcdef") == "token abcdef"
    assert not redact.is_active()


def test_register_and_unregister_by_token() -> None:
    first = redact.register(["abcdef"])
    second = redact.register(["abcdef"])
    redact.unregister(first)
    assert scrub("abcdef") == REDACTED, "the same value of another run is still active"
    redact.unregister(second)
    redact.unregister(second)  # twice is harmless
    assert scrub("abcdef") == "abcdef"


def test_registering_nothing_scrubs_nothing() -> None:
    with redact.active([None, "", "ab"]):
        assert not redact.is_active()


def test_the_registry_is_shared_by_threads() -> None:
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def run(n: int) -> None:
        secret = f"secret-of-run-{n}"
        barrier.wait()
        with redact.active([secret]):
            barrier.wait()  # every run is registered now
            seen.append(scrub(" ".join(f"secret-of-run-{i}" for i in range(8))))
            barrier.wait()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [" ".join([REDACTED] * 8)] * 8
    assert not redact.is_active()


def test_sensitive_values_of_inputs() -> None:
    specs = {
        "token": Input(str, sensitive=True),
        "keys": Input(dict, sensitive=True),
        "empty": Input(str, sensitive=True, default=""),
        "user": Input(str, default="ann"),
    }
    raw = {"token": "s3cr3t", "keys": {"a": 1}, "empty": "", "user": "ann"}
    assert redact.sensitive_values(raw, specs) == ["s3cr3t", {"a": 1}]


# -- values --------------------------------------------------------------------------------------


def test_scrub_value_replaces_every_string_holding_a_secret() -> None:
    result = {
        "token": SECRET,
        "note": f"sent with {SECRET!r}",
        "list": [1, "fine", f"x{SECRET}"],
        SECRET: "key holds it",
        "pin": 4829130,
        "ok": True,
    }
    clean = scrub_value(result, [SECRET, 482913])
    assert clean == {
        "token": REDACTED,
        "note": "sent with '***'",
        "list": [1, "fine", "x***"],
        REDACTED: "key holds it",
        "pin": "***0",
        "ok": True,
    }
    assert_clean(json.dumps(clean))
    assert_clean(repr(clean))


def test_scrub_value_leaves_clean_values_alone() -> None:
    value = {"a": [1, 2, {"b": "c"}]}
    assert scrub_value(value, ["abcdef"]) is value
    assert scrub_value("text", []) == "text"


def test_a_returned_sensitive_dict_is_scrubbed_whole() -> None:
    keys = {"a": 1, "b": "xy"}
    assert scrub_value({"echo": keys, "other": {"a": 2}}, [keys]) == {
        "echo": REDACTED,
        "other": {"a": 2},
    }


# -- logging -------------------------------------------------------------------------------------


def logged(configure: Callable[[logging.Handler], None] | None = None) -> tuple[Any, io.StringIO]:
    """A fresh logger with one stream handler carrying the redacting filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    redact.install(handler)
    if configure is not None:
        configure(handler)
    logger = logging.getLogger(f"test.redact.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_the_filter_scrubs_the_message_and_its_arguments() -> None:
    logger, stream = logged()
    with redact.active([SECRET]):
        logger.info("token %s", SECRET)
        logger.info("token %r in %r", SECRET, {"k": SECRET})
        logger.info(f"token {SECRET}")
        logger.info("mapping %(t)s", {"t": SECRET})
        logger.info("unused arg", {"t": SECRET})
    text = stream.getvalue()
    assert_clean(text)
    assert text.count(REDACTED) == 5
    assert text.endswith("INFO unused arg\n")


def test_arguments_holding_a_secret_are_dropped_even_when_the_message_does_not_show_them() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "unused", ({"t": SECRET},), None)
    with redact.active([SECRET]):
        RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("unused", None)


def test_the_filter_scrubs_exceptions_stacks_and_extras() -> None:
    logger, stream = logged(lambda h: h.setFormatter(logging.Formatter("%(message)s %(payload)s")))
    with redact.active([SECRET]):
        try:
            raise KeyError(SECRET)
        except KeyError:
            logger.exception("failed", extra={"payload": {"token": SECRET}})
        logger.info("here", stack_info=True, extra={"payload": SECRET})
    text = stream.getvalue()
    assert_clean(text)
    assert "KeyError: '***'" in text
    assert "failed {'token': '***'}" in text


def test_an_exception_without_a_secret_keeps_its_exc_info() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", None, None)
    try:
        raise ValueError("plain")
    except ValueError:
        record.exc_info = sys.exc_info()
    with redact.active(["abcdef"]):
        RedactingFilter().filter(record)
    assert record.exc_info is not None


def test_a_message_that_cannot_be_rendered_keeps_no_secret() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d %s", (SECRET,), None)
    with redact.active([SECRET]):
        assert RedactingFilter().filter(record)
    assert_clean(str(record.msg) + repr(record.args))


def test_nothing_changes_while_no_secret_is_active() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a %s", ("b",), None)
    assert RedactingFilter().filter(record)
    assert (record.msg, record.args) == ("a %s", ("b",))


def test_install_is_idempotent() -> None:
    handler = logging.NullHandler()
    redact.install(handler, handler)
    redact.install(logging.LoggerAdapter(logging.getLogger("test.redact.adapter"), {}))
    assert handler.filters == [redact.FILTER]
    assert logging.getLogger("test.redact.adapter").filters == [redact.FILTER]


def test_install_process_covers_the_root_handlers_and_last_resort() -> None:
    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)
    try:
        redact.install_process()
        assert redact.FILTER in handler.filters
        assert logging.lastResort is not None
        assert redact.FILTER in logging.lastResort.filters
    finally:
        root.removeHandler(handler)


def test_the_json_log_format_is_scrubbed() -> None:
    logger, stream = logged(lambda h: h.setFormatter(JsonFormatter()))
    with redact.active([SECRET]):
        logger.info("token %s", SECRET, extra={"script": SECRET})
        try:
            raise KeyError(SECRET)
        except KeyError:
            logger.exception("failed %r", {"k": SECRET})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["message"] == "token ***"
    assert lines[0]["script"] == REDACTED
    assert lines[1]["message"] == "failed {'k': '***'}"
    assert "KeyError: '***'" in lines[1]["exception"]
    assert_clean(stream.getvalue())


# -- signals -------------------------------------------------------------------------------------


def test_signal_receivers_see_a_scrubbed_event() -> None:
    from datetime import UTC, datetime

    event = JobEvent(
        name="x",
        run_id="r1",
        trigger=Trigger.manual,
        status=RunStatus.succeeded,
        inputs={"token": REDACTED, "url": f"https://h/?t={SECRET}"},
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        result={"echo": SECRET},
        error=f"KeyError: {SECRET!r}",
        traceback=f"Traceback ...\nKeyError: {SECRET!r}",
        reason=f"because {SECRET}",
        extra={"note": SECRET},
    )
    seen: list[JobEvent] = []

    def receiver(sender: object, event: JobEvent) -> None:
        seen.append(event)

    sender = object()
    with job_complete.connected_to(receiver, sender=sender), redact.active([SECRET]):
        emit(job_complete, sender, event)
    [got] = seen
    assert got.result == {"echo": REDACTED}
    assert got.error == "KeyError: '***'"
    assert got.reason == "because ***"
    assert got.inputs == {"token": REDACTED, "url": "https://h/?t=***"}
    assert_clean(json.dumps(got.to_dict(), default=str))


# -- properties ----------------------------------------------------------------------------------

SPECIAL = "'\"\\\n\t\r\x00\x7f é€😀\u200b/"
secrets_text = st.text(
    alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters()), min_size=4, max_size=16
)
ESCAPES: list[Callable[[str], str]] = [
    str,
    repr,
    ascii,
    json.dumps,
    lambda t: json.dumps(t, ensure_ascii=False),
    lambda t: repr([t, 1]),
    lambda t: str({"k": t}),
    lambda t: repr((t,)),
    lambda t: repr({t}),
    lambda t: str({t: 1}),
    lambda t: json.dumps({"k": [t]}),
    lambda t: json.dumps({t: 1}, ensure_ascii=False),
    lambda t: "%r / %s" % (t, t),  # noqa: UP031
    lambda t: f"{t!r} {t!a}",
    lambda t: repr(KeyError(t)),
]


@settings(max_examples=300, deadline=None)
@given(
    secret=secrets_text,
    prefix=st.text(max_size=6),
    suffix=st.text(max_size=6),
    chain=st.lists(st.sampled_from(ESCAPES), min_size=1, max_size=2),
)
def test_no_rendering_of_a_secret_survives(
    secret: str, prefix: str, suffix: str, chain: list[Callable[[str], str]]
) -> None:
    text = prefix + secret + suffix
    for render in chain:
        text = render(text)
    scrubbed = scrub(text, [secret])
    assert_clean(scrubbed, secret)


@settings(max_examples=100, deadline=None)
@given(
    secret=st.dictionaries(
        st.text(max_size=5),
        st.one_of(secrets_text, st.integers(min_value=1000), st.lists(secrets_text, max_size=2)),
        min_size=1,
        max_size=3,
    ),
    render=st.sampled_from([repr, str, json.dumps, lambda v: json.dumps(v, ensure_ascii=False)]),
)
def test_no_leaf_of_a_sensitive_json_value_survives(secret: dict[str, Any], render: Any) -> None:
    scrubbed = scrub(f"inputs: {render(secret)}", [secret])
    for value in secret.values():
        for leaf in value if isinstance(value, list) else [value]:
            for form in stdlib_forms(str(leaf)):
                assert form not in scrubbed


@settings(max_examples=100, deadline=None)
@given(secret=secrets_text, wrap=st.sampled_from(["plain", "list", "dict", "key", "nested"]))
def test_no_secret_survives_in_a_scrubbed_result(secret: str, wrap: str) -> None:
    value: Any = {
        "plain": secret,
        "list": [1, f"<{secret}>"],
        "dict": {"k": secret},
        "key": {secret: 1},
        "nested": {"a": [{"b": f"x{secret!r}"}]},
    }[wrap]
    clean = scrub_value(value, [secret])
    for text in (json.dumps(clean), json.dumps(clean, ensure_ascii=False), repr(clean)):
        assert_clean(text, secret)
