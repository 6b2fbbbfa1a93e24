"""Errors the CLI turns into exit codes: a user's mistake exits 2 with one line, a failed run 1."""


class UserError(Exception):
    """Bad input from the user (params, data files, CLI arguments): one line, exit code 2."""


class RunFailed(Exception):
    """A run that started and then failed (a bug, NaN loss, ...): exit code 1."""


class Pruned(Exception):
    """Raised inside a sweep trial when the pruner stops it early; not an error of the run."""


class NonFiniteLoss(RunFailed):
    """The training loss became NaN or infinite."""


class ContractError(RunFailed):
    """A plugin broke the stage contract (read an undeclared param or input): a bug in the plugin."""


def database_reason(exc: BaseException) -> str:
    """The first line of what a database said (SQLAlchemy wraps the driver's error in ``orig``)."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
