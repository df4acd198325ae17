"""The framework's user errors: mistakes a user can fix (a bad option, missing data, a corrupt checkpoint).

Entry points (``train.py``, ``evaluate.py``) print a :class:`UserError` as one line, ``error: <message>``, and
exit with its ``exit_status`` (2); every other exception keeps its traceback, since it is a bug to report.
Each subclass but :class:`TrainingDiverged` also derives from the built-in type code and tests already expect
(``ValueError``, ``FileNotFoundError``, ``RuntimeError``, ``MemoryError``), so raising the specific type changes
nothing for callers that catch the built-in one.
"""
from __future__ import annotations

import functools
import os
import re
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


class OutOfMemory(UserError, MemoryError):
    """An allocation the machine (or the GPU) cannot make: sizes chosen larger than it holds."""


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

    outermost = error
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        if is_out_of_memory(error):
            return OutOfMemory(f"out of memory ({allocation_failed(error)}); expected sizes that fit this machine's "
                               f"memory: {SIZE_OPTIONS} (or a larger machine)")
        if not isinstance(error, (InstantiationException, OmegaConfBaseException)):
            return None  # only look through the wrappers: any other exception is a bug with its own traceback
        seen.add(id(error))
        # OmegaConf drops __cause__ unless OC_CAUSE=1, but the original stays the implicit __context__
        error = error.__cause__ or error.__context__
    return dangling_interpolation(outermost)


#: the options whose size sets what a run allocates, named when an allocation fails
SIZE_OPTIONS = ("lower data.batch_size, model.n_critic, the networks' widths (model.generator.width, "
                "model.discriminator.width), metrics.num_samples or metrics.batch_size")


def is_out_of_memory(error: BaseException) -> bool:
    """Python's MemoryError (a list of 1e12 indices), torch's CPU allocator refusing a tensor (a RuntimeError) and
    CUDA's out-of-memory error: sizes beyond the machine were a traceback from wherever they were first allocated
    (an audit: ``data.batch_size=1e12``, ``model.n_critic=1e12``, widths of 1e12)."""
    import torch

    return (isinstance(error, (MemoryError, torch.OutOfMemoryError))
            or (isinstance(error, RuntimeError) and "can't allocate memory" in str(error)))


def allocation_failed(error: BaseException) -> str:
    """What could not be allocated, where the allocator says (torch's CPU message is a line of C++ context)."""
    import re

    from gan.utils.device import human_size  # it imports this module

    text = str(error).strip()
    asked = re.search(r"tried to allocate (\d+) bytes", text)
    if asked:
        return f"an allocation of {human_size(int(asked.group(1)))} failed"
    return text.splitlines()[0] if text else type(error).__name__


def dangling_interpolation(error: BaseException) -> ConfigError | None:
    """An interpolation that refers to an option a user set to null or left out (``model.schedules.gamma=null`` on
    r3gan, whose ``model.penalties.r1r2.gamma`` reads ``${model.schedules.gamma.value.start}``) as one line: it was
    OmegaConf's traceback. Only a missing key or a null node read as a container; a resolver's own exception keeps its
    traceback."""
    from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

    if not isinstance(error, (InterpolationKeyError, InterpolationResolutionError)):
        return None
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    if not isinstance(error, InterpolationKeyError) and not first.startswith(("ConfigTypeError", "ConfigKeyError")):
        return None
    key = getattr(error, "full_key", None) or "an option"
    return ConfigError(f"{key} cannot be resolved: {first.split(': ', 1)[-1] if ': ' in first else first}; expected the "
                       f"option it refers to to hold a value, or a value of its own ({key}=<value>)")


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
            # the run's log files get what ended it: Hydra prints a traceback to stderr only, and the one line of a user
            # error went to stderr only, so train.log of a crashed run ended as if it ran on (a DDP audit)
            write_to_log_files(error_line(user_error) if user_error is not None
                               else "the run ended with an exception (a bug to report):",
                               None if user_error is not None else (type(error), error, error.__traceback__))
            if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            # a divergence is decided for all DDP processes at once, and a configuration is every process's own copy
            # of one: said by rank 0 alone (each rank printed it); data and checkpoint errors may be one rank's
            from gan.utils.distributed import is_rank_zero

            if is_rank_zero() or not isinstance(user_error, (TrainingDiverged, ConfigError)):
                print_error(user_error)
            raise SystemExit(user_error.exit_status) from None

    return wrapper


def write_to_log_files(message: str, exc_info=None) -> None:
    """``message`` (with a traceback when ``exc_info`` is given) in the files the root logger writes (Hydra's
    ``train.log``, a DDP process's own log), not on the console, where the entry point or Hydra says it."""
    import logging

    record = logging.LogRecord("gan", logging.ERROR, __file__, 0, message, None, exc_info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def stop_on_user_error(check: Callable[[], Any]) -> None:
    """For a Hydra callback's checks (a multirun's options, a run's folder): Hydra turns an exception of a callback
    into a warning and goes on, so the run or multirun stops here instead, with the one line of a user error (one
    raised inside a config resolver, e.g. the study's folder, included)."""
    try:
        check()
    except Exception as error:
        user_error = user_error_behind(error)
        if user_error is None:
            raise
        print_error(user_error)
        raise SystemExit(user_error.exit_status) from None


def error_line(error: BaseException | str) -> str:
    """The one line a user error is said in: ``error: <message>``."""
    return f"error: {one_line(message_of(error))}"


def print_error(error: BaseException | str) -> None:
    print(error_line(error), file=sys.stderr, flush=True)


def message_of(error: BaseException | str) -> str:
    """``error``'s message; for one a DataLoader worker raised (torch re-raises it in the main process with the
    worker's traceback as its message), the original message, from the traceback's last line."""
    text = str(error)
    if isinstance(error, BaseException) and "\nOriginal Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        return last.removeprefix(prefix).removeprefix(f"{type(error).__qualname__}: ")
    return text


def describe_composition_error(error: BaseException) -> str:
    """One line for a Hydra composition error: the override that failed and what was expected.

    Hydra's own report spans several lines (an unknown group option lists every option on a line of its
    own), and OmegaConf's cause (e.g. ``Key 'x' is not in struct``) is printed separately; both go into
    the one line here."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(error, OverrideParseException):
        return one_line(f"cannot parse the override {error.override!r}: {error.message}")
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and "/" in error.missing_cfg_file:
        group, _, name = error.missing_cfg_file.rpartition("/")
        options = error.options or group_options(group)
        expected = f"one of {', '.join(sorted(options))}" if options else "a config under conf/" + group
        return f"{group}={name}: there is no such {group} config (expected {expected})"
    cause = error.__cause__
    unknown = describe_unknown_key(error, cause)
    if unknown is not None:
        return unknown
    message = one_line(f"{error} {cause}" if cause is not None and str(cause) not in str(error) else error)
    return message + did_you_mean(cause)


def describe_unknown_key(error: BaseException, cause: BaseException | None) -> str | None:
    """One line for an override of a key the config does not have (``y=1``, ``model.n_critc=3``), which Hydra put as
    "Could not override 'y'. To append to your config use +y=1 Key 'y' is not in struct full_key: y object_type=dict",
    naming no key that exists: the override, the node that lacks the key, a close key or the node's keys, and how a
    new key is added. None for any other error."""
    key, parent = getattr(cause, "key", None), getattr(cause, "parent_node", None)
    if not isinstance(key, str) or parent is None or not hasattr(parent, "keys") or "not in struct" not in str(cause):
        return None
    keys = [str(k) for k in parent.keys()]
    if key in keys:
        return None
    full_key = str(getattr(cause, "full_key", None) or key)
    appended = re.search(r"use \+(\S+)", str(error))  # Hydra's own text holds the override as written
    override = appended.group(1) if appended else full_key
    node = full_key.rpartition(".")[0] if "." in full_key else "the config"
    close = did_you_mean(cause)
    if close:
        expected = close.removeprefix("; ")
    else:
        options = sorted(k for k in keys if not k.startswith("_"))
        expected = f"expected one of {', '.join(options)}" if options else f"{node} has no keys to override"
    return f"{override}: {node} has no key {key}; {expected} (+{override} would add it as a new key)"


#: how Hydra's defaults list (hydra/_internal/defaults_list.py, hydra-core 1.3) refuses a config group override whose
#: value is not a name: ``presets=null``, ``model=3``
GROUP_OVERRIDE_REFUSED = "Config group override must be a string or a list"


def describe_group_choice_error(error: BaseException, arguments: list[str]) -> str:
    """One line for :data:`GROUP_OVERRIDE_REFUSED`, which names neither the override nor the options: the first
    command-line override of a config group whose value is not a name (``presets=null``), and the group's configs."""
    overrides = [argument for argument in arguments if "=" in argument and not argument.startswith("-")]
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # an override Hydra cannot parse was reported before this one could be reached
        parsed = []
    for override in parsed:
        if override.is_sweep_override() or override.is_delete() or isinstance(override.value(), (str, list, dict)):
            continue
        group = override.key_or_group
        options = group_options(group)
        if options:
            value = override.input_line.partition("=")[2]
            return f"{group}={value}: expected one of {', '.join(sorted(options))} (the name of a {group} config)"
    return one_line(f"{error}; a config group (model=..., presets=...) takes a config's name")


def did_you_mean(cause: BaseException | None) -> str:
    """``; did you mean n_critic?`` for a key OmegaConf did not find (``model.n_critc=3``), from the keys
    its parent node has; empty when nothing is close."""
    import difflib

    key, parent = getattr(cause, "key", None), getattr(cause, "parent_node", None)
    if not isinstance(key, str) or parent is None or not hasattr(parent, "keys"):
        return ""
    keys = [str(k) for k in parent.keys()]
    if key in keys:  # the key exists: the error is about something else (e.g. deleting a structured node)
        return ""
    close = difflib.get_close_matches(key, keys, n=3)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def group_options(group: str) -> list[str]:
    """The configs of a config group on the running Hydra's search path (Hydra leaves them out of the error
    for a group chosen in a list, ``metrics=[fid,nope]``); empty when Hydra is not initialised."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        return []
    return list(GlobalHydra.instance().config_loader().get_group_options(group))


def refuse_dashed_overrides(arguments: list[str]) -> None:
    """``--generator_steps=4`` (argparse's style) got argparse's 8-line usage and "unrecognized arguments" from Hydra,
    with no word of how to write it (a README walk-through): one line naming the override as Hydra takes it."""
    from hydra._internal.utils import get_args_parser

    _, unknown = get_args_parser().parse_known_args(arguments)
    dashed = next((argument for argument in unknown if argument.startswith("-")), None)
    if dashed is None:
        return
    key, equals, value = dashed.lstrip("-").partition("=")
    if not equals:  # ``--key value``: the value is the next argument, if there is one that is not an option
        following = arguments[arguments.index(dashed) + 1:arguments.index(dashed) + 2]
        value = following[0] if following and "=" not in following[0] and not following[0].startswith("-") else "<value>"
    name = key.replace("-", "_") if key.replace("-", "_").isidentifier() else key  # --data-dir: data_dir
    print_error(UserError(f"{dashed}: options are Hydra overrides, written key=value without dashes; expected {name}={value}"))
    raise SystemExit(UserError.exit_status)


#: what a checkpoint fixes for evaluate.py: train.py's config groups and the keys under them that evaluate.yaml lacks
TRAINING_ONLY_GROUPS = ("model", "loss", "optimizer", "arch", "augment", "presets", "preset", "callbacks", "logger",
                        "trainer", "experiment", "hparams_search", "debug")


def refuse_training_options(arguments: list[str]) -> None:
    """evaluate.py given a training option (``model=dcgan``, ``model.generator.width=8``): Hydra said "Could not
    override 'model'. No match in the defaults list. ... use +model=dcgan", and ``+model=dcgan`` then failed inside
    model/dcgan.yaml (a README walk-through). One line saying where the model comes from."""
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue
        key = argument.partition("=")[0].lstrip("+~")
        if key.split(".")[0].split("@")[0] in TRAINING_ONLY_GROUPS:
            print_error(UserError(f"{argument}: evaluate.py scores the generator its checkpoint holds, with the run's own "
                                  f"model, loss and optimizer (its run_config); expected evaluate.py's options (ckpt_path, "
                                  f"fake_path, data, metrics, num_samples, seed, seeds, use_ema, compare_with, ...), or "
                                  f"train.py for {key}"))
            raise SystemExit(UserError.exit_status)


def composition_errors_in_one_line() -> None:
    """Make Hydra report a composition error (an unknown group option such as ``model=wgn``, an override of
    a key that does not exist, an override it cannot parse) like every other user error: one line on
    stderr and exit status 2, instead of its multi-line report and status 1. Call it in an entry point's
    ``__main__`` before the Hydra task.

    Composition happens inside Hydra's ``run_and_report`` (hydra/_internal/utils.py, hydra-core 1.3), before
    the task function and its :func:`exit_on_user_error` run, so the hook wraps the function that one
    calls. Anything else (a bug, ``InstantiationException``) still reaches Hydra's report, and
    ``HYDRA_FULL_ERROR=1`` still shows the traceback."""
    import hydra._internal.utils as hydra_utils
    from hydra.errors import ConfigCompositionException, OverrideParseException

    refuse_dashed_overrides(sys.argv[1:])
    report = hydra_utils.run_and_report
    if getattr(report, "reports_composition_errors", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def composed() -> Any:
            try:
                return func()
            except (ConfigCompositionException, OverrideParseException) as error:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                print_error(describe_composition_error(error))
                raise SystemExit(UserError.exit_status) from None
            except ValueError as error:  # Hydra's defaults list refusing ``presets=null`` (or a number) as a group choice
                if os.environ.get("HYDRA_FULL_ERROR") == "1" or not str(error).startswith(GROUP_OVERRIDE_REFUSED):
                    raise
                print_error(describe_group_choice_error(error, sys.argv[1:]))
                raise SystemExit(UserError.exit_status) from None

        return report(composed)

    run_and_report.reports_composition_errors = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report
