"""The ``@script`` decorator and the quest block: every key, the Sails aliases, every error."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from quest import Input, InvalidDefinition, ScheduleError, script
from quest.definition import QuestBlock, Script, declaration_of, parse_block
from quest.enums import BackoffType, CatchUp


def declare(**kwargs: Any) -> Script:
    @script(**kwargs)
    def job(inputs: Any, ctx: Any) -> None:
        return None

    declaration = declaration_of(job)
    assert declaration is not None
    return Script.build("job", declaration)


def block_error(block: dict[str, Any]) -> InvalidDefinition:
    with pytest.raises(InvalidDefinition) as caught:
        parse_block(block)
    return caught.value


# -- the decorator -------------------------------------------------------------------------------


def test_the_design_form_declares_a_script_and_returns_the_function_unchanged() -> None:
    def cleanup_sessions(inputs: Any, ctx: Any) -> dict[str, int]:
        return {"deleted": inputs}

    decorated = script(
        friendly_name="Cleanup sessions",
        description="Remove expired sessions and their associated data.",
        quest={"interval": "1 hour", "without_overlapping": True},
        inputs={
            "days_old": Input(int, default=30, description="Remove sessions inactive this long."),
        },
    )(cleanup_sessions)

    assert decorated is cleanup_sessions
    assert decorated(7, None) == {"deleted": 7}
    declaration = declaration_of(decorated)
    assert declaration is not None
    assert declaration.friendly_name == "Cleanup sessions"
    assert declaration.description == "Remove expired sessions and their associated data."
    assert declaration.quest is not None
    assert declaration.quest.interval == timedelta(hours=1)
    assert declaration.quest.without_overlapping is True
    assert declaration.inputs["days_old"].type is int
    assert declaration.inputs["days_old"].default == 30


def test_sync_and_async_functions_are_both_scripts() -> None:
    @script(friendly_name="Sync")
    def sync_job(inputs: Any, ctx: Any) -> None:
        return None

    @script(friendly_name="Async")
    async def async_job(inputs: Any, ctx: Any) -> None:
        return None

    sync = declaration_of(sync_job)
    asynchronous = declaration_of(async_job)
    assert sync is not None and asynchronous is not None
    assert not Script.build("sync-job", sync).is_async
    assert Script.build("async-job", asynchronous).is_async


def test_bare_decorator_and_docstring_as_description() -> None:
    @script
    def nightly(inputs: Any, ctx: Any) -> None:
        """Rebuild the search index."""

    declared = Script.build("nightly", declaration_of(nightly))  # type: ignore[arg-type]
    assert declared.description == "Rebuild the search index."
    assert declared.friendly_name == "nightly"
    assert declared.quest is None
    assert declared.schedule("UTC") is None


def test_an_absent_quest_block_means_on_demand_with_the_documented_defaults() -> None:
    block = declare().block()
    assert block.without_overlapping is True
    assert block.enabled is True
    assert block.attempts == 1
    assert block.catch_up.policy is CatchUp.skip
    assert block.run_on_start is False


def test_sails_spelling_friendly_name() -> None:
    assert declare(friendlyName="Send digests").friendly_name == "Send digests"


def test_unknown_decorator_argument_names_it_and_the_valid_ones() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(friendly="x")
    assert caught.value.key == "friendly"
    assert "friendly_name, description, quest, inputs" in str(caught.value)


def test_a_function_that_cannot_take_inputs_and_ctx_is_rejected() -> None:
    with pytest.raises(InvalidDefinition, match=r"\(inputs, ctx\)"):

        @script()
        def wrong(inputs: Any) -> None:
            return None


def test_a_bare_type_instead_of_an_input_names_the_input() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(inputs={"days_old": int})
    assert caught.value.key == "inputs.days_old"
    assert "Input(" in str(caught.value)


def test_inputs_must_be_a_mapping() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(inputs=["days_old"])
    assert caught.value.key == "inputs"


def test_input_names_must_be_identifiers() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(inputs={"days-old": Input(int, default=1)})
    assert caught.value.key == "inputs.days-old"
    assert "identifier" in str(caught.value)


def test_an_unsupported_input_type_says_what_is_supported() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        Input(set)
    assert "int, float, str, bool, date, datetime" in str(caught.value)


def test_a_bad_input_mapping_names_the_input() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(inputs={"when": {"type": "moment"}})
    assert caught.value.key == "inputs.when.type"
    assert "int, float, str, bool, date, datetime" in str(caught.value)


def test_a_default_outside_the_bounds_is_a_declaration_error() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(inputs={"days_old": Input(int, default=50, max=10)})
    assert caught.value.key == "inputs.days_old"
    assert "default 50" in str(caught.value)


def test_sails_style_input_mappings() -> None:
    declared = declare(
        inputs={
            "days_old": {"type": "number", "defaultsTo": 30, "description": "Days."},
            "mode": {"type": "string", "isIn": ["fast", "slow"], "defaultsTo": "fast"},
            "label": {"type": "string", "regex": "^[a-z]+$", "minLength": 2, "maxLength": 5},
        }
    )
    assert declared.inputs["days_old"].type is int
    assert declared.inputs["days_old"].default == 30
    assert declared.inputs["mode"].choices == ("fast", "slow")
    assert declared.inputs["label"].pattern == "^[a-z]+$"
    assert declared.inputs["label"].is_required


def test_an_unknown_key_in_a_sails_input_mapping_names_the_input() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(inputs={"n": {"type": "number", "defaultTo": 3}})
    assert caught.value.key == "inputs.n.defaultTo"
    assert "'defaultTo'" in str(caught.value)
    assert "valid keys" in str(caught.value)


def test_scheduled_inputs_are_checked_against_the_inputs_when_the_script_is_built() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(
            quest={"interval": "1 hour", "inputs": {"days_old": "many"}},
            inputs={"days_old": Input(int, default=30)},
        )
    assert caught.value.key == "quest.inputs"
    assert "days_old" in str(caught.value)


def test_a_declaration_error_carries_the_file_when_built_for_a_path() -> None:
    @script(quest={"inputs": {"nope": 1}})
    def job(inputs: Any, ctx: Any) -> None:
        return None

    with pytest.raises(InvalidDefinition) as caught:
        Script.build("job", declaration_of(job), "/srv/app/scripts/job.py")  # type: ignore[arg-type]
    assert caught.value.path == "/srv/app/scripts/job.py"
    assert str(caught.value).startswith("/srv/app/scripts/job.py: quest.inputs: ")


# -- the quest block: every key ------------------------------------------------------------------


def test_every_key_of_the_quest_block() -> None:
    class Transient(Exception):
        pass

    block = parse_block(
        {
            "interval": "every 5 minutes",
            "timezone": "Europe/Paris",
            "without_overlapping": False,
            "lease_ttl": "2 minutes",
            "timeout": "30 seconds",
            "attempts": 3,
            "backoff": {
                "type": "exponential",
                "delay": "30 seconds",
                "max_delay": "10m",
                "jitter": 0.2,
            },
            "jitter": "10s",
            "catch_up": {"policy": "once", "window": "1 hour"},
            "run_on_start": True,
            "enabled": False,
            "environments": ["production", "staging"],
            "inputs": {"days_old": 7},
            "rate_limit": {"max": 10, "per": "1 second", "per_key": True},
            "concurrency": {"max": 2, "per_key": True},
            "retention": {"succeeded": {"age": "7 days"}, "failed": {"count": 10}},
            "discard_on": [Transient],
        }
    )
    assert block is not None
    assert block.interval == timedelta(minutes=5)
    assert block.timezone == "Europe/Paris"
    assert block.without_overlapping is False
    assert block.lease_ttl == timedelta(minutes=2)
    assert block.timeout == timedelta(seconds=30)
    assert block.attempts == 3
    assert block.backoff is not None
    assert block.backoff.type is BackoffType.exponential
    assert block.backoff.delay == timedelta(seconds=30)
    assert block.backoff.max_delay == timedelta(minutes=10)
    assert block.backoff.jitter == 0.2
    assert block.jitter == timedelta(seconds=10)
    assert block.catch_up.policy is CatchUp.once
    assert block.catch_up.window == timedelta(hours=1)
    assert block.run_on_start is True
    assert block.enabled is False
    assert block.environments == ("production", "staging")
    assert block.inputs == {"days_old": 7}
    assert block.rate_limit is not None
    assert block.rate_limit.max == 10
    assert block.rate_limit.per == timedelta(seconds=1)
    assert block.rate_limit.per_key is True
    assert block.concurrency is not None
    assert (block.concurrency.max, block.concurrency.per_key) == (2, True)
    assert block.retention is not None
    assert block.retention.succeeded.age == timedelta(days=7)
    assert block.retention.failed.count == 10
    assert block.discard_on == (Transient,)


def test_the_sails_aliases_are_accepted() -> None:
    block = parse_block(
        {
            "cronTime": "0 3 * * *",
            "withoutOverlapping": False,
            "isActive": False,
            "runOnStart": True,
            "catchUp": "once",
            "leaseTtl": 60,
            "rateLimit": {"max": 2, "per": "1s", "perKey": True},
            "backoff": {"delay": "5s", "maxDelay": "1m"},
        }
    )
    assert block is not None
    assert block.cron == "0 3 * * *"
    assert block.without_overlapping is False
    assert block.enabled is False
    assert block.run_on_start is True
    assert block.catch_up.policy is CatchUp.once
    assert block.lease_ttl == timedelta(minutes=1)
    assert block.rate_limit is not None and block.rate_limit.per_key is True
    assert block.backoff is not None and block.backoff.max_delay == timedelta(minutes=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30 seconds", timedelta(seconds=30)),
        ("1 hour", timedelta(hours=1)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("every 5 minutes", timedelta(minutes=5)),
        (90, timedelta(seconds=90)),
        (timedelta(minutes=2), timedelta(minutes=2)),
    ],
)
def test_interval_forms(value: Any, expected: timedelta) -> None:
    block = parse_block({"interval": value})
    assert block is not None and block.interval == expected


@pytest.mark.parametrize(
    "expression", ["*/5 * * * *", "0 9 * * MON-FRI", "0 0 1 JAN *", "30 0 9 * * *", "@daily"]
)
def test_cron_forms(expression: str) -> None:
    block = parse_block({"cron": expression})
    assert block is not None and block.cron == expression


def test_cron_whitespace_is_normalised() -> None:
    block = parse_block({"cron": "  0   3 * *  * "})
    assert block is not None and block.cron == "0 3 * * *"


@pytest.mark.parametrize(
    ("value", "policy"),
    [("skip", CatchUp.skip), ("once", CatchUp.once), (True, CatchUp.once), (False, CatchUp.skip)],
)
def test_catch_up_shorthands(value: Any, policy: CatchUp) -> None:
    block = parse_block({"catch_up": value})
    assert block is not None and block.catch_up.policy is policy


def test_concurrency_and_environments_shorthands() -> None:
    block = parse_block({"concurrency": 3, "environments": "production"})
    assert block is not None
    assert block.concurrency is not None and block.concurrency.max == 3
    assert block.environments == ("production",)


def test_at_is_a_one_off_instant_in_the_scripts_timezone() -> None:
    block = parse_block({"at": "2026-05-01T03:00", "timezone": "Europe/Paris"})
    assert block is not None
    schedule = block.schedule("UTC")
    assert schedule is not None
    assert schedule.at == datetime.fromisoformat("2026-05-01T03:00+02:00")  # type: ignore[union-attr]


def test_the_block_is_frozen() -> None:
    block = parse_block({"interval": "1 hour"})
    assert block is not None
    with pytest.raises(Exception, match="frozen"):
        block.interval = timedelta(minutes=1)  # type: ignore[misc]


def test_schedules_from_the_block() -> None:
    from quest.schedule import CronSchedule, IntervalSchedule

    interval = QuestBlock.model_validate({"interval": "1 hour"}).schedule("UTC")
    cron = QuestBlock.model_validate({"cron": "0 3 * * *", "timezone": "Asia/Tokyo"}).schedule(
        "UTC"
    )
    assert isinstance(interval, IntervalSchedule)
    assert isinstance(cron, CronSchedule)
    assert str(cron.timezone) == "Asia/Tokyo"
    assert declare(quest={"interval": "1 hour"}).timezone("America/New_York").key == (
        "America/New_York"
    )


# -- the quest block: every error names the key and what would be valid --------------------------


def test_an_unparsable_interval() -> None:
    error = block_error({"interval": "every fortnight-ish"})
    assert isinstance(error, InvalidDefinition)
    assert error.key == "quest.interval"
    assert "'every fortnight-ish'" in str(error)
    assert '"30 seconds"' in str(error)


@pytest.mark.parametrize("value", [0, -5, "0 seconds", True])
def test_an_interval_that_is_not_positive(value: Any) -> None:
    assert block_error({"interval": value}).key == "quest.interval"


def test_an_invalid_cron_field() -> None:
    error = block_error({"cron": "61 * * * *"})
    assert error.key == "quest.cron"
    assert "61" in str(error)
    assert "0-59" in str(error)


@pytest.mark.parametrize("expression", ["* * * *", "* * * 13 *", "* * 32 * *", "* * * * FOO", ""])
def test_other_invalid_cron_expressions(expression: str) -> None:
    assert block_error({"cronTime": expression}).key == "quest.cron"


def test_an_unknown_timezone() -> None:
    error = block_error({"interval": "1 hour", "timezone": "Mars/Olympus"})
    assert error.key == "quest.timezone"
    assert "Mars/Olympus" in str(error)
    assert "IANA" in str(error)


def test_a_timezone_in_the_wrong_case_gets_a_suggestion() -> None:
    assert "Europe/London" in str(block_error({"timezone": "europe/london"}))


@pytest.mark.parametrize(
    "block",
    [
        {"interval": "1 hour", "cron": "0 * * * *"},
        {"interval": "1 hour", "cronTime": "0 * * * *"},
        {"cron": "0 * * * *", "at": "2026-05-01T03:00"},
    ],
)
def test_more_than_one_schedule(block: dict[str, Any]) -> None:
    error = block_error(block)
    assert error.key == "quest"
    assert "interval, cron or at" in str(error)
    assert "both" in str(error)


def test_both_interval_and_cron_names_them() -> None:
    message = str(block_error({"interval": "1 hour", "cron": "0 * * * *"}))
    assert "'interval'" in message and "'cron'" in message


def test_an_unknown_key_lists_the_valid_keys_and_suggests_one() -> None:
    error = block_error({"intervall": "1 hour"})
    assert error.key == "quest.intervall"
    message = str(error)
    assert "did you mean 'interval'?" in message
    for key in (
        "interval",
        "cron",
        "at",
        "timezone",
        "without_overlapping",
        "timeout",
        "attempts",
        "backoff",
        "jitter",
        "catch_up",
        "run_on_start",
        "enabled",
        "environments",
        "inputs",
        "rate_limit",
        "concurrency",
    ):
        assert key in message


def test_an_unknown_nested_key_names_the_path() -> None:
    assert block_error({"backoff": {"kind": "fixed"}}).key == "quest.backoff.kind"


@pytest.mark.parametrize(
    ("block", "key", "hint"),
    [
        ({"at": "soon"}, "quest.at", "ISO 8601"),
        ({"timeout": "forever"}, "quest.timeout", '"30 seconds"'),
        ({"lease_ttl": "abc"}, "quest.lease_ttl", '"30 seconds"'),
        ({"lease_ttl": "500 ms"}, "quest.lease_ttl", "between 1 second and a day"),
        ({"lease_ttl": "2 days"}, "quest.lease_ttl", "between 1 second and a day"),
        ({"leaseTtl": 0.01}, "quest.leaseTtl", "between 1 second and a day"),
        ({"jitter": "abc"}, "quest.jitter", '"30 seconds"'),
        ({"attempts": 0}, "quest.attempts", "greater than 0"),
        ({"backoff": {"type": "linear"}}, "quest.backoff.type", "'fixed' or 'exponential'"),
        ({"backoff": {"delay": "whenever"}}, "quest.backoff.delay", '"30 seconds"'),
        ({"backoff": {"jitter": 2}}, "quest.backoff.jitter", "1"),
        ({"catch_up": "sometimes"}, "quest.catch_up.policy", "'skip' or 'once'"),
        ({"rate_limit": {"max": 1}}, "quest.rate_limit.per", "required"),
        ({"rate_limit": {"max": 0, "per": "1s"}}, "quest.rate_limit.max", "greater than 0"),
        ({"concurrency": 0}, "quest.concurrency.max", "greater than 0"),
        ({"discard_on": ["ValueError"]}, "quest.discard_on", "not an exception class"),
    ],
)
def test_each_bad_value_names_its_key(block: dict[str, Any], key: str, hint: str) -> None:
    error = block_error(block)
    assert error.key == key
    assert str(error).startswith(f"{key}: ")
    assert hint in str(error)


def test_the_block_must_be_a_mapping() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        parse_block(["interval", "1 hour"])  # type: ignore[arg-type]
    assert caught.value.key == "quest"


def test_schedule_errors_are_invalid_definitions() -> None:
    with pytest.raises(InvalidDefinition):
        declare(quest={"cron": "61 * * * *"})
    assert issubclass(ScheduleError, InvalidDefinition)


def test_a_decorated_function_with_a_bad_block_raises_when_declared() -> None:
    with pytest.raises(InvalidDefinition) as caught:

        @script(quest={"interval": "1 hour", "timezone": "Mars/Olympus"})
        def job(inputs: Any, ctx: Any) -> None:
            return None

    assert caught.value.key == "quest.timezone"


def test_dates_as_input_types_in_a_declaration() -> None:
    declared = declare(
        inputs={
            "day": Input(date, default=date(2026, 1, 1)),
            "since": Input(datetime, required=False),
        }
    )
    assert declared.inputs["day"].type_name == "date"
    assert declared.inputs["since"].type_name == "datetime"


def test_a_scheduled_script_needs_a_value_for_every_required_input() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        declare(quest={"cron": "0 3 * * *"}, inputs={"count": Input(int)})
    assert caught.value.key == "quest.inputs"
    assert "count: is required" in str(caught.value)
    scheduled = declare(
        quest={"cron": "0 3 * * *", "inputs": {"count": 5}}, inputs={"count": Input(int)}
    )
    assert scheduled.block().inputs == {"count": 5}


def test_an_on_demand_script_may_have_required_inputs() -> None:
    assert declare(inputs={"count": Input(int)}).inputs["count"].is_required
    assert declare(quest={"timeout": 60}, inputs={"count": Input(int)}).quest is not None
