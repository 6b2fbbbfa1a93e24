"""The ``orch`` group: the built-in commands, those plugins add, and one per task verb."""

from __future__ import annotations

import sys
import threading

import click

from orchestrator import __version__, interrupt
from orchestrator.cli.common import CommandEnv, handled, setup
from orchestrator.errors import UserError


class OrchGroup(click.Group):
    """The built-in commands, plus those plugins add (``orch_register_commands``) and one per verb
    that tasks declare in ``Task.commands`` (``orch predict collab``). Plugins load only when a name
    is not built in, or for the command list of ``orch --help``."""

    def _registered(self) -> dict[str, click.Command]:
        """Commands from ``orch_register_commands`` (cheap: task plugins stay unimported)."""
        if not hasattr(self, "_added"):
            from orchestrator.manager import get_plugin_manager

            self._pm = get_plugin_manager()
            added = click.Group("plugins")
            self._pm.hook.orch_register_commands(cli=added)
            self._added = {n: c for n, c in added.commands.items() if n not in self.commands}
        return self._added

    def _task_verb(self, name: str) -> click.Command | None:
        """``orch VERB TASK`` for a verb some task declares in ``Task.commands``."""
        from orchestrator.registry import load_tasks

        self._registered()
        verbs = {verb for reg in load_tasks(self._pm).values() for verb in reg.task.commands}
        return _task_command(name) if name in verbs else None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._registered()})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.commands.get(name) or self._registered().get(name) or self._task_verb(name)


@click.group(cls=OrchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="orch")
@click.option("--tracking-uri", envvar="ORCH_TRACKING_URI", metavar="URI",
              help="tracking store (default: MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db).")
@click.option("-q", "--quiet", is_flag=True, help="no per-epoch lines or progress bars.")
@click.pass_context
def main(ctx: click.Context, tracking_uri: str | None, quiet: bool) -> None:
    """Run deep-learning task plugins as DVC stages, sweep them with Optuna, track them in MLflow.

    Tasks add their own verbs: `orch predict collab`, `orch generate charrnn` (`orch tasks -v`
    lists each task's commands)."""
    ctx.ensure_object(dict)
    ctx.obj.update(tracking_uri=tracking_uri, quiet=quiet)
    if threading.current_thread() is threading.main_thread():
        interrupt.install()  # SIGTERM stops a run as Ctrl-C does


def _task_command(kind: str) -> click.Command:
    @click.command(kind, context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                          "help_option_names": []},
                  help=f"Run TASK's {kind} command (orch {kind} TASK --help lists its options).")
    @click.argument("task")
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    @click.pass_context
    @handled
    def command(ctx, task: str, args: tuple[str, ...]) -> None:
        from orchestrator.registry import get_task, load_tasks

        pm, project = setup(ctx)
        reg = get_task(pm, task)
        cmd = reg.task.commands.get(kind)
        if cmd is None:
            offering = [n for n, r in load_tasks(pm).items() if kind in r.task.commands]
            raise UserError(f"task {task!r} has no {kind} command (tasks with one: {', '.join(offering) or 'none'})")
        try:
            cmd.main(list(args), prog_name=f"orch {kind} {task}", obj=CommandEnv(pm, project, reg.task),
                     standalone_mode=False)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            raise UserError(exc.format_message()) from None

    return command
