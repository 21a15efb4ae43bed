"""Bad and hostile input: unknown names, invalid Run-now values (refused as ``quest enqueue``
refuses them), values built to break parsers, oversized bodies and a database that is down."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from quest import Quest, RunStatus
from quest.cli import cli
from quest.dashboard import create_app, warm
from quest.errors import InvalidInputs
from quest.inputs import parse_text
from quest.testing import FrozenClock, temporary_quest
from tests.dashboard._support import (
    LOOPBACK,
    NOW,
    SCRIPTS,
    Browser,
    TestClient,
    browser,
    field_error,
)


def queued_count(quest: Quest) -> int:
    return quest.store.count_runs(status=RunStatus.queued)


def cli_error(quest: Quest, *args: str) -> str:
    """What ``quest enqueue`` says of a bad value: the message after the option's name."""
    result = CliRunner().invoke(cli, ["enqueue", *args], obj=quest, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    return line.split("': ", 1)[1] if "': " in line else line


def same_message(form: str | None, command: str) -> bool:
    """The form shows the command's message as a sentence: capitalised, with a full stop."""
    assert form is not None
    normalise = lambda text: text.strip().rstrip(".").lower()  # noqa: E731
    return normalise(form) == normalise(command)


# -- unknown names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/scripts/nope", "There is no script named &#39;nope&#39; here."),
        ("/runs/0123456789abcdef0123456789abcdef", "There is no run with id"),
        ("/runs/0123456789abcdef/logs", "There is no run with id"),
        ("/runs/%3Cscript%3E", "There is no run with id &#39;&lt;script&gt;&#39;"),
        ("/no/such/page", "There is no page at"),
    ],
)
def test_an_unknown_script_run_or_page_is_a_404_that_says_so(
    web: Browser, path: str, says: str
) -> None:
    response = web.get(path)
    assert response.status_code == 404
    assert says in response.text
    assert "<script>" not in response.text


# -- Run now --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "option", "text"),
    [
        ("days_old", "--days-old", "-1"),
        ("days_old", "--days-old", "abc"),
        ("days_old", "--days-old", "1.5"),
        ("days_old", "--days-old", "9" * 5000),
        ("ratio", "--ratio", "NaN"),
        ("ratio", "--ratio", "2"),
        ("ratio", "--ratio", "inf"),
        ("ratio", "--ratio", "1" * 5000),
        ("mode", "--mode", "quick"),
    ],
)
def test_an_invalid_value_is_refused_next_to_its_field_as_the_cli_refuses_it(
    web: Browser, quest: Quest, key: str, option: str, text: str
) -> None:
    response = web.post("/scripts/cleanup/run", {f"input.{key}": text, "key": "k"})
    assert response.status_code == 400
    error = field_error(response.text, key)
    assert error, response.text
    assert same_message(error, cli_error(quest, "cleanup", option, text)), error
    assert queued_count(quest) == 0
    assert 'name="key" value="k"' in response.text, "the form comes back as it was filled"
    assert len(response.text) < 50_000, "a long value is shown cut"


def test_a_missing_required_input_is_refused_next_to_it(web: Browser, quest: Quest) -> None:
    response = web.post("/scripts/needs-count/run", {})
    assert response.status_code == 400
    assert field_error(response.text, "count") == "Required."
    assert queued_count(quest) == 0


def test_an_invalid_delay_is_refused_next_to_it(web: Browser, quest: Quest) -> None:
    for delay in ("soon", "-5m", "99999999999 years"):
        response = web.post("/scripts/cleanup/run", {"delay": delay})
        assert response.status_code == 400, delay
        assert field_error(response.text, "delay"), response.text
    assert queued_count(quest) == 0


def test_a_key_over_200_characters_is_refused(web: Browser, quest: Quest) -> None:
    response = web.post("/scripts/cleanup/run", {"key": "k" * 201})
    assert response.status_code == 400
    assert "A key is at most 200 characters." in response.text
    assert queued_count(quest) == 0


@pytest.mark.parametrize(
    ("key", "text", "says"),
    [
        ("payload", "[" * 100_001, "At most 100,000 characters"),
        ("payload", "[" * 100_000, "nested"),
        ("payload", "[" * 99_000, "nest"),
        ("payload", "{" * 5000, ""),
        ("payload", '{"a": NaN}', ""),
        ("payload", '{"a": 1e999}', ""),
        ("payload", '{"a": ' + "9" * 5000 + "}", ""),
        ("payload", "[1, 2]", "expected a JSON object"),
        ("items", '{"a": 1}', "expected a JSON list"),
        ("day", "2026-02-30", "ISO 8601 date"),
        ("name", "x" * 41, ""),
    ],
)
def test_hostile_values_get_a_clear_error(
    web: Browser, quest: Quest, key: str, text: str, says: str
) -> None:
    response = web.post("/scripts/ingest/run", {f"input.{key}": text})
    assert response.status_code == 400, response.text[-500:]
    error = field_error(response.text, key)
    assert error and says in error, error
    assert queued_count(quest) == 0


def test_a_lone_surrogate_percent_encoded_is_refused(web: Browser, quest: Quest) -> None:
    token = web.token()
    response = web.client.post(
        "/scripts/ingest/run",
        content=f"csrf={token}&input.name=%ED%A0%80",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert field_error(response.text, "name") or "UTF-8" in response.text
    assert queued_count(quest) == 0


def test_a_nul_character_in_a_form_is_a_400_next_to_its_field(web: Browser, quest: Quest) -> None:
    for data, field in (
        ({"input.name": "a\x00b"}, "name"),
        ({"input.payload": '{"a": "\x00"}'}, "payload"),
        ({"delay": "5\x00m"}, "delay"),
    ):
        response = web.post("/scripts/ingest/run", data)
        assert response.status_code == 400, data
        assert "NUL character" in (field_error(response.text, field) or ""), data
    response = web.post("/scripts/ingest/run", {"key": "\x00"})
    assert response.status_code == 400
    assert "NUL character" in response.text
    assert queued_count(quest) == 0


def test_a_body_that_is_not_utf8_is_a_400(web: Browser, quest: Quest) -> None:
    token = web.token()
    response = web.client.post(
        "/scripts/cleanup/run",
        content=b"csrf=" + token.encode() + b"&input.days_old=\xff\xfe",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert "UTF-8" in response.text
    assert queued_count(quest) == 0


def test_a_2_mb_body_is_refused(web: Browser, quest: Quest) -> None:
    token = web.token()
    body = f"csrf={token}&input.name=" + "x" * 2_000_000
    response = web.client.post(
        "/scripts/ingest/run",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert "too large" in response.text
    assert queued_count(quest) == 0


def test_too_many_fields_are_refused(web: Browser, quest: Quest) -> None:
    token = web.token()
    body = f"csrf={token}&" + "&".join(f"f{i}=1" for i in range(5000))
    response = web.client.post(
        "/scripts/cleanup/run",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert queued_count(quest) == 0


@pytest.mark.parametrize(
    "query",
    [
        "/runs?q=%ED%A0%80",
        "/runs?q=%00",
        "/runs?script=%00&key=%00&trigger=%00&status=%00",
        "/runs?since=9999999d",
        "/runs?since=999999d",
        "/runs?since=0001-01-01T00:00:00%2B14:00",
        "/runs?until=9999-12-31T23:59:59-14:00",
        "/runs?before=" + "A" * 5000,
        "/scripts?q=%00&page=99999999999999999999999999",
        "/scripts?page=-3",
        "/scripts/%00",
        "/runs/%00",
        "/runs/%ED%A0%80",
    ],
)
def test_hostile_query_strings_never_give_a_500(web: Browser, query: str) -> None:
    response = web.get(query)
    assert response.status_code in (200, 400, 404), response.text[-500:]


# -- the form agrees with quest.inputs.parse_text and the script's model --------------------------

FORM_SCRIPTS = {
    "cleanup": ["days_old", "mode", "dry_run", "ratio"],
    "ingest": ["payload", "items", "day", "name"],
}


def expected_outcome(quest: Quest, name: str, key: str, text: str) -> bool:
    """Whether quest accepts *text* for input *key* of *name*, as the CLI reads it (no command
    line can carry a NUL character, and the form refuses one)."""
    if "\x00" in text:
        return False
    script = quest.registry.get(name)
    spec = script.inputs[key]
    try:
        if spec.choices is not None:
            if text not in [str(c) for c in spec.choices]:
                return False
            value: Any = next(c for c in spec.choices if str(c) == text)
        elif spec.type is bool:
            if text not in ("true", "false"):
                return False
            value = text == "true"
        else:
            value = parse_text(spec, text)
        quest.runner.prepare(name, {key: value})
    except (ValueError, InvalidInputs):
        return False
    return True


@pytest.fixture
def one_quest(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Quest]:
    folder = tmp_path_factory.mktemp("hypothesis")
    with temporary_quest(
        folder, scripts=SCRIPTS, database_url=database_url, clock=FrozenClock(NOW)
    ) as quest:
        yield quest


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    target=st.sampled_from([(n, k) for n, keys in FORM_SCRIPTS.items() for k in keys]),
    text=st.one_of(
        st.text(max_size=40).filter(lambda t: t != ""),
        st.sampled_from(
            ["-1", "0", "30", "NaN", "1e309", "true", "fast", "[]", "{}", "2026-03-01"]
        ),
        st.from_regex(r"-?[0-9]{1,25}(\.[0-9]{0,5})?", fullmatch=True),
    ),
)
def test_any_text_for_any_input_enqueues_one_run_or_shows_an_error_by_its_field(
    one_quest: Quest, target: tuple[str, str], text: str
) -> None:
    quest = one_quest
    name, key = target
    web = browser(create_app(quest))
    before = queued_count(quest)
    response = web.post(f"/scripts/{name}/run", {f"input.{key}": text})
    assert response.status_code in (303, 400), response.text[-800:]
    accepted = expected_outcome(quest, name, key, text)
    if response.status_code == 303:
        assert accepted, (name, key, text)
        assert queued_count(quest) == before + 1
    else:
        assert not accepted, (name, key, text, response.text[-800:])
        assert field_error(response.text, key), response.text[-800:]
        assert queued_count(quest) == before


# -- the database down ----------------------------------------------------------------------------


def test_an_unreachable_sqlite_database_is_a_503_until_it_is_back(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the database's folder should be")
    with temporary_quest(
        tmp_path,
        scripts=SCRIPTS,
        database_url=f"sqlite:///{blocker / 'quest.sqlite3'}",
        clock=FrozenClock(NOW),
    ) as quest:
        assert warm(quest) is False, "nothing to read: the pages say so themselves"
        client = TestClient(create_app(quest), client=LOOPBACK)
        for path in ("/", "/scripts", "/runs", "/runs/abc", "/queue", "/nodes"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert "The database is unreachable" in response.text
            assert response.headers["retry-after"] == "5"
        blocker.unlink()
        blocker.mkdir()
        assert client.get("/").status_code == 200, "back without a restart"
        assert warm(quest) is True
        assert client.get("/scripts/cleanup").status_code == 200


@pytest.mark.postgres
def test_a_postgres_outage_is_a_503_and_the_dashboard_recovers(postgres_url: str) -> None:
    from tests.integration.test_outage import Proxy, schema_through

    url = make_url(postgres_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        proxy.cut()  # the port accepts and closes at once: a database that is down
        with (
            schema_through(proxy, postgres_url) as through,
            temporary_quest(scripts=SCRIPTS, database_url=through, clock=FrozenClock(NOW)) as quest,
        ):
            web = browser(create_app(quest))
            down = web.get("/")
            assert down.status_code == 503
            assert "The database is unreachable" in down.text
            proxy.restore()
            assert web.get("/").status_code == 200
            assert web.post("/scripts/cleanup/pause").status_code == 303
            proxy.cut()  # down again, now with connections in the pool
            for path in ("/", "/scripts", "/runs", "/queue", "/nodes"):
                assert web.get(path).status_code == 503, path
            assert web.post("/scripts/cleanup/resume").status_code == 503
            proxy.restore()
            for path in ("/", "/scripts", "/runs", "/queue", "/nodes"):
                assert web.get(path).status_code == 200, path
            assert quest.store.is_paused("cleanup"), "the refused resume changed nothing"
    finally:
        proxy.close()


def test_the_down_page_keeps_the_prefix(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    blocker = tmp_path / "data"
    blocker.write_text("x")
    with temporary_quest(
        tmp_path, scripts=SCRIPTS, database_url=f"sqlite:///{blocker / 'q.sqlite3'}"
    ) as quest:
        parent = Starlette(routes=[Mount("/quest", app=create_app(quest))])
        response = TestClient(parent, client=LOOPBACK).get("/quest/")
        assert response.status_code == 503
        assert 'href="/quest/static/quest.css"' in response.text
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
