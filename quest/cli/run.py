"""``quest run NAME`` and ``quest enqueue NAME``: a command per script, options from its inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from ._common import get_app, setup_logging, to_json, user_errors, verbosity

if TYPE_CHECKING:
    from quest.definition import Script
    from quest.inputs import Input


class InputParam(click.ParamType):  # type: ignore[type-arg]
    """An input's option: parsed here for a clear message, checked by the script's model.

    The message names the option, shows a long value cut and never shows a sensitive one.
    """

    def __init__(self, spec: Input) -> None:
        self.spec = spec
        self.name = _METAVARS.get(spec.type, "text")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from quest.inputs import parse_text

        if not isinstance(value, str):
            return value
        try:
            return parse_text(self.spec, value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


_METAVARS = {
    int: "integer",
    float: "float",
    str: "text",
    date: "date",
    datetime: "datetime",
    dict: "JSON object",
    list: "JSON list",
}


class ChoiceParam(click.Choice):  # type: ignore[type-arg]
    """A choice among typed values: compares as text, returns the declared value."""

    def __init__(self, values: tuple[Any, ...], *, sensitive: bool = False) -> None:
        self.values = {str(v): v for v in values}
        self.sensitive = sensitive
        super().__init__(list(self.values))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from quest.inputs import describe_value

        text = str(value)
        if text in self.values:
            return self.values[text]
        choices = ", ".join(repr(choice) for choice in self.values)
        if len(choices) > 200:
            choices = choices[:200] + f"… ({len(self.values)} choices)"
        self.fail(f"{describe_value(text, self.sensitive)} is not one of {choices}", param, ctx)


def _param_type(spec: Input) -> Any:
    if spec.choices is not None:
        return ChoiceParam(spec.choices, sensitive=spec.sensitive)
    return InputParam(spec)


def _help(spec: Input) -> str:

    from quest.describe import input_facts

    parts = [spec.description.rstrip(".") + "." if spec.description else ""]
    facts = input_facts(spec)
    parts.append(f"[{'; '.join(facts)}]")
    return " ".join(p for p in parts if p)


def input_options(script: Script) -> list[click.Option]:
    from quest.inputs import option_name

    options = []
    for key, spec in script.inputs.items():
        flag = option_name(key)
        if spec.type is bool and spec.choices is None:
            options.append(
                click.Option([f"{flag}/--no-{flag[2:]}", key], default=None, help=_help(spec))
            )
        else:
            options.append(
                click.Option([flag, key], type=_param_type(spec), default=None, help=_help(spec))
            )
    return options


def _reserved(script: Script, names: set[str]) -> set[str]:
    from quest.inputs import option_name

    return names - {option_name(key)[2:] for key in script.inputs}


class ScriptGroup(click.Group):
    """A group whose subcommands are the project's scripts."""

    def __init__(self, *args: Any, make: Callable[[Script], click.Command], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.make = make

    def list_commands(self, ctx: click.Context) -> list[str]:
        with user_errors():
            return sorted(get_app(ctx).registry.scripts)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        with user_errors():
            registry = get_app(ctx).registry
        script = registry.scripts.get(cmd_name)
        if script is None:
            return None
        return self.make(script)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if not name.startswith("-") and self.get_command(ctx, name) is None:
            registry = get_app(ctx).registry
            broken = [e for e in registry.errors if _file_name(e.path) == name]
            if broken:
                ctx.fail(f"Script {name!r} could not be loaded:\n  {broken[0]}")
            known = ", ".join(sorted(registry.scripts)) or "none"
            ctx.fail(f"No script named {name!r}. Known scripts: {known}")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        registry = get_app(ctx).registry
        rows = [(s.name, s.friendly_name) for s in registry]
        if rows:
            with formatter.section("Scripts"):
                formatter.write_dl(rows)


def _file_name(path: str) -> str:
    from pathlib import Path

    from quest.discovery import script_name

    return script_name(Path(Path(path).name))


INTERRUPTED = 130
"""``quest run``'s exit status when the run was interrupted (as a shell reports Ctrl-C)."""


def _interrupted(app: Any, name: str, run_id: str) -> str:
    """What ``quest run`` says when the run it ran was interrupted: what was recorded of it."""
    try:
        row = app.store.get_run(run_id)
    except Exception:
        return f"{name}: interrupted; what was recorded of run {run_id} could not be read"
    if row is None:
        return f"{name}: interrupted before run {run_id} was recorded; nothing ran"
    status = getattr(row["status"], "value", row["status"])
    return f"{name}: interrupted; run {run_id} is recorded {status} (quest history {name})"


def _collect(script: Script, params: dict[str, Any]) -> dict[str, Any]:
    return {key: params[key] for key in script.inputs if params.get(key) is not None}


def _bad_inputs(script: Script, exc: Any) -> click.UsageError:
    from quest.inputs import option_name

    if len(exc.errors) != 1:
        return click.UsageError(exc.message)
    key, message = exc.errors[0]
    if message == "is required":
        return click.MissingParameter(param_hint=f"'{option_name(key)}'", param_type="option")
    if message.startswith(("is ", "holds ", "has ", "expected ", "must ")):
        message = f"the value given {message}"
    return click.BadParameter(message, param_hint=f"'{option_name(key)}'")


def _make_run(script: Script) -> click.Command:
    def callback(**params: Any) -> None:
        from quest import redact
        from quest.errors import InvalidInputs
        from quest.runner import RunRequest, new_run_id

        ctx = click.get_current_context()
        app = get_app(ctx)
        setup_logging(
            20 if verbosity(ctx) >= 0 else 30,
            runner_level=10 if verbosity(ctx) >= 2 else (20 if verbosity(ctx) else 30),
        )
        raw = _collect(script, params)
        with user_errors():
            try:
                _, inputs = app.runner.prepare(script.name, raw)
            except InvalidInputs as exc:
                raise _bad_inputs(script, exc) from None
        request = RunRequest(
            run_id=new_run_id(),
            retry=True if params.get("retry") else None,
            wait=bool(params.get("wait")),
        )
        # Everything this command prints or logs about the run is scrubbed of its secrets.
        with redact.active(redact.sensitive_values(inputs, script.inputs)):
            with user_errors(), _showing_progress(app):
                try:
                    outcome = app.runner.run(script.name, inputs, request)
                except KeyboardInterrupt:
                    # Ctrl-C, or the script raised KeyboardInterrupt.
                    click.echo(_interrupted(app, script.name, str(request.run_id)), err=True)
                    ctx.exit(INTERRUPTED)
                while outcome.retry_run_id is not None and params.get("retry"):
                    _report(outcome, as_json=False)
                    retried = _retry_here(app, outcome)
                    if retried is None:
                        break
                    outcome = retried
            _report(outcome, as_json=bool(params.get("as_json")))
        ctx.exit(0 if outcome.ok else 1)

    params: list[click.Parameter] = list(input_options(script))
    reserved = _reserved(script, {"wait", "retry", "json"})
    if "wait" in reserved:
        params.append(
            click.Option(["--wait"], is_flag=True, help="If the script is running, wait for it.")
        )
    if "retry" in reserved:
        params.append(
            click.Option(
                ["--retry"],
                is_flag=True,
                help="Retry on failure as the quest block's attempts say.",
            )
        )
    if "json" in reserved:
        params.append(
            click.Option(["--json", "as_json"], is_flag=True, help="Print the outcome as JSON.")
        )
    return _command(script, callback, params)


@contextmanager
def _showing_progress(app: Any) -> Iterator[None]:
    """Show the progress the run reports on stderr: a live bar on a terminal, lines elsewhere."""
    from quest.progress import KIND

    from ._progress import RunProgress

    display = RunProgress.for_stderr()
    runner = app.runner
    recording = runner.reporters.get(KIND)

    def report(run_id: str, payload: Any) -> None:
        if recording is not None:
            recording(run_id, payload)
        display.update(run_id, payload)

    runner.reporters[KIND] = report
    try:
        yield
    finally:
        if recording is not None:
            runner.reporters[KIND] = recording
        else:
            runner.reporters.pop(KIND, None)
        display.close()


def _report(outcome: Any, *, as_json: bool) -> None:
    from quest.redact import scrub

    if as_json:
        click.echo(
            to_json(
                {
                    "name": outcome.name,
                    "run_id": outcome.run_id,
                    "status": outcome.status.value,
                    "attempt": outcome.attempt,
                    "result": outcome.result,
                    "error": outcome.error,
                    "duration_ms": outcome.duration_ms,
                }
            )
        )
    elif outcome.ok:
        click.secho(
            f"✓ {outcome.name} succeeded in {outcome.duration_ms} ms (run {outcome.run_id})",
            fg="green",
            err=True,
        )
        if outcome.result is not None:
            click.echo(to_json(outcome.result))
    else:
        if outcome.traceback:
            click.echo(scrub(outcome.traceback.rstrip()), err=True)
        retry = (
            f"; attempt {outcome.attempt + 1} at {outcome.retry_at:%H:%M:%S}"
            if outcome.retry_at
            else ""
        )
        click.secho(
            f"✗ {outcome.name} {outcome.status.value} after {outcome.duration_ms} ms "
            f"(run {outcome.run_id}, attempt {outcome.attempt}): "
            f"{scrub(outcome.error or outcome.reason or '')}{retry}",
            fg="red",
            err=True,
        )


def _retry_here(app: Any, outcome: Any) -> Any:
    """Wait for the retry *outcome* queued and run it in this process, unless serve took it."""
    import time

    from quest.enums import RunStatus

    if outcome.retry_at is not None:
        delay = (outcome.retry_at - app.clock.now()).total_seconds()
        if delay > 0:
            click.secho(f"  waiting {delay:.1f} s before attempt {outcome.attempt + 1}", err=True)
            time.sleep(delay)
    row = app.claim(outcome.retry_run_id)
    if row is None:
        click.secho(f"  attempt {outcome.attempt + 1} was taken by quest serve", err=True)
        return None
    retried = app.run_claimed(row)
    if retried is not None and retried.status is RunStatus.queued:
        app.store.requeue(row["id"], run_after=app.clock.now() + timedelta(seconds=1))
        click.secho(
            f"  attempt {outcome.attempt + 1} is waiting for another run of {outcome.name}; "
            "quest serve will run it",
            err=True,
        )
        return None
    return retried


def _make_enqueue(script: Script) -> click.Command:
    def callback(**params: Any) -> None:
        from quest.errors import InvalidInputs

        ctx = click.get_current_context()
        app = get_app(ctx)
        raw = _collect(script, params)
        with user_errors():
            try:
                run_id = app.enqueue(
                    script.name, raw, delay=params.get("delay"), key=params.get("key")
                )
            except InvalidInputs as exc:
                if not exc.errors:
                    raise click.BadParameter(exc.message, param_hint="'--delay'") from None
                raise _bad_inputs(script, exc) from None
        click.echo(run_id)
        click.secho(f"queued {script.name} (run {run_id})", fg="green", err=True)

    params: list[click.Parameter] = list(input_options(script))
    reserved = _reserved(script, {"delay", "key"})
    if "delay" in reserved:
        params.append(
            click.Option(["--delay"], help='Run no sooner than this from now ("5m", "1 hour").')
        )
    if "key" in reserved:
        params.append(
            click.Option(["--key"], help="Group key: per-key rate limits and concurrency apply.")
        )
    return _command(script, callback, params)


def _command(
    script: Script, callback: Callable[..., None], params: list[click.Parameter]
) -> click.Command:
    return click.Command(
        script.name,
        callback=callback,
        params=params,
        help=_describe(script),
        short_help=script.friendly_name,
    )


def _describe(script: Script) -> str:
    lines = [script.friendly_name]
    if script.description:
        lines += ["", script.description]
    return "\n".join(lines)


run = ScriptGroup(
    "run",
    make=_make_run,
    help="Run a script now, in this process, and record the run.\n\n"
    "Options are generated from the script's inputs: quest run NAME --help lists them.",
    no_args_is_help=True,
)
enqueue = ScriptGroup(
    "enqueue",
    make=_make_enqueue,
    help="Queue a run of a script; quest serve runs it. Inputs are validated now.",
    no_args_is_help=True,
)
