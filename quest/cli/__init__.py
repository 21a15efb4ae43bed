"""The ``quest`` command. Subcommands are imported only when they run, so ``--help`` is fast."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("quest.cli.run:run", "Run a script now and record the run."),
    "serve": ("quest.cli.serve:serve", "Run every script on its schedule, and queued runs."),
    "list": ("quest.cli.inspect:list_scripts", "List scripts, their schedules and last outcomes."),
    "show": ("quest.cli.inspect:show", "Show a script's declaration and next fire times."),
    "history": ("quest.cli.history:history", "Show recorded runs from the JobLog."),
    "enqueue": ("quest.cli.run:enqueue", "Queue a run for quest serve to pick up."),
    "pause": ("quest.cli.admin:pause", "Pause a script's schedule (all hosts)."),
    "resume": ("quest.cli.admin:resume", "Resume a paused script."),
    "prune": ("quest.cli.admin:prune", "Delete old JobLog rows by the retention rules."),
    "cancel": ("quest.cli.cancel:cancel", "Cancel a queued or running run."),
    "logs": ("quest.cli.logs:logs", "Print the lines a run logged (--follow: as it logs)."),
    "nodes": ("quest.cli.nodes:nodes", "List the serve processes of this database."),
    "watch": ("quest.cli.watch:watch", "Show the running runs of every node, live."),
    "db": ("quest.cli.db:db", "Manage the database schema."),
    "demo": ("quest.cli.demo:demo", "Sample data for the bundled application."),
    "dashboard": ("quest.cli.dashboard:dashboard", "Serve the web dashboard."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        try:
            command: click.Command = getattr(importlib.import_module(module_name), attr)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return command

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        from ._common import shortened

        with shortened():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        from ._common import shortened

        with shortened():
            return super().invoke(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors in the log output.")
@click.version_option("0.1.0", prog_name="quest")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """quest runs an application's background scripts: on demand, on schedules, and recorded.

    Scripts live in the scripts folder ([tool.quest] scripts_dir, QUEST_SCRIPTS_DIR); runs are
    recorded in the JobLog of the database (QUEST_DATABASE_URL; an embedded SQLite file by default).
    """
    ctx.meta["quest.verbosity"] = -1 if quiet else verbose


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="quest")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
