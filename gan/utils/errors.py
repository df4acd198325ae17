"""The framework's user errors: mistakes a user can fix (a bad option, missing data, a corrupt checkpoint).

Entry points (``train.py``, ``evaluate.py``) print a :class:`UserError` as one line, ``error: <message>``, and
exit with its ``exit_status`` (2); every other exception keeps its traceback, since it is a bug to report.
Each subclass also derives from the built-in type code and tests already expect (``ValueError``,
``FileNotFoundError``, ``RuntimeError``), so raising the specific type changes nothing for callers that
catch the built-in one.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable


class UserError(Exception):
    """Something the user can fix; the message names the bad value and what was expected."""

    #: the process exit status of an entry point that stops on this error
    exit_status = 2


class ConfigError(UserError, ValueError):
    """An option out of range, an unknown choice, or options that do not fit together."""


class DataError(UserError, FileNotFoundError):
    """A data set that is missing or cannot be read."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, truncated, not written by this framework, or that cannot be saved."""


class TrainingDiverged(UserError):
    """Training stopped because a loss, score or gradient went non-finite (or the scores ran away).

    Its own exit status (3), so a script can tell a run that diverged from one that was misconfigured."""

    exit_status = 3


def one_line(text: object) -> str:
    """``text`` with every run of whitespace, newlines included, made one space."""
    return " ".join(str(text).split())


def user_error_behind(error: BaseException) -> UserError | None:
    """``error`` if it is a :class:`UserError`, or the one Hydra or OmegaConf wrapped (``instantiate`` and
    config resolvers re-raise what the target raised inside their own exception types); None otherwise."""
    from hydra.errors import InstantiationException
    from omegaconf.errors import OmegaConfBaseException

    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        if not isinstance(error, (InstantiationException, OmegaConfBaseException)):
            return None  # only look through the wrappers: any other exception is a bug with its own traceback
        seen.add(id(error))
        # OmegaConf drops __cause__ unless OC_CAUSE=1, but the original stays the implicit __context__
        error = error.__cause__ or error.__context__
    return None


def exit_on_user_error(task: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps an entry point's Hydra task function: a :class:`UserError` becomes one line on stderr,
    ``error: <message>``, and ``SystemExit(error.exit_status)``. ``HYDRA_FULL_ERROR=1`` lets it through with
    its full traceback; any other exception is left to Hydra, traceback included.

    SystemExit is not an ``Exception``, so Hydra does not catch it: a multirun stops at that job (jobs
    that must not stop a sweep are handled in ``train.py``'s ``main``)."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except Exception as error:
            user_error = user_error_behind(error)
            if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print_error(user_error)
            raise SystemExit(user_error.exit_status) from None

    return wrapper


def print_error(error: BaseException | str) -> None:
    print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
