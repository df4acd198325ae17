"""Classes of one's own: the modules a run imports first (``imports=[mypkg.metrics]``), and why a ``_target_`` does
not import.

Hydra reports any ``_target_`` it cannot import as ``Error locating target 'X', set env var HYDRA_FULL_ERROR=1 to
see chained exception``: a class name with a typo, a module that is not on the path and a module of one's own that
raises while it is imported all read the same, and the cause is hidden (an audit of adding one's own loss, networks
and metrics). :func:`why_not_importable` finds the cause, for a one-line error that names it.
"""
from __future__ import annotations

import difflib
import importlib
import traceback
from pathlib import Path
from typing import Iterable

from gan.utils.errors import ConfigError, one_line

#: where a module of one's own must be for ``_target_`` and ``imports`` to find it
IMPORTABLE_FROM = "next to train.py, installed, or in a folder on PYTHONPATH"


def why_not_importable(target: str, names_a_module: bool = False) -> str | None:
    """Why ``target`` (``mypkg.losses.SoftHinge``) does not import, in a few words; None when it does.

    The modules of the path are imported from the top down and the rest looked up as attributes, as Hydra's locate
    does: a module that is missing (``there is no module mypkg here``), one that raises while it is imported (``importing
    mypkg.losses raised ZeroDivisionError: division by zero (mypkg/losses.py, line 3)``) and a name a module does not
    define (``mypkg.losses has no SoftHnge; did you mean SoftHinge?``) are told apart. ``names_a_module``: ``target`` is a
    module, not a class in one."""
    parts = str(target).split(".")
    if not all(part.isidentifier() for part in parts):
        return f"{target!r} is not a dotted path to a class or function (e.g. mypkg.losses.MyLoss)"
    imported, end = None, 0
    while end < len(parts):  # the modules from the top down: the first that is missing or raises is the cause
        name = ".".join(parts[:end + 1])
        try:
            imported = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # no such module: the rest are attributes of the one above
                break
            return raised_while_importing(name, error)  # the module is there, but imports a missing one
        except Exception as error:  # SyntaxError, a NameError or ZeroDivisionError at the module's top level, ...
            return raised_while_importing(name, error)
        end += 1
    if imported is None:
        return f"there is no module {parts[0]} here"
    found = imported
    for depth, attribute in enumerate(parts[end:]):
        if not hasattr(found, attribute):
            owner = ".".join(parts[:end + depth])
            if depth == 0 and (end + 1 < len(parts) or names_a_module):  # mypkg.nomodule.Loss: nomodule was to be a module
                return f"there is no module {owner}.{attribute}"
            names = [name for name in dir(found) if not name.startswith("_")]
            close = difflib.get_close_matches(attribute, names, n=1, cutoff=0.6)
            return f"{owner} has no {attribute}" + (f"; did you mean {close[0]}?" if close else "")
        found = getattr(found, attribute)
    return None


def class_path(obj: object) -> str:
    """The dotted path of ``obj``'s class (or of ``obj``, a class), as a ``_target_`` names it (``mygan.losses.SoftHinge``)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def raised_while_importing(name: str, error: BaseException) -> str:
    """``importing <name> raised <type>: <message> (<file>, line <n>)``: the innermost frame, which is where to look."""
    where = ""
    if isinstance(error, SyntaxError) and error.filename:
        where = f" ({error.filename}, line {error.lineno})"
    else:
        frames = traceback.extract_tb(error.__traceback__)
        own = [frame for frame in frames if "importlib" not in Path(frame.filename).parts and "<frozen" not in frame.filename]
        if own:
            where = f" ({own[-1].filename}, line {own[-1].lineno})"
    return f"importing {name} raised {type(error).__name__}: {one_line(error)}{where}"


def import_modules(names: Iterable[str] | None, option: str = "imports") -> None:
    """Import each module of ``names`` (the ``imports`` option: a user's own metrics, losses or networks, which may
    register themselves, e.g. ``register_metric``) before the run's options are checked. A module that does not
    import is a one-line error naming it and why."""
    if names is None:
        return
    if isinstance(names, str):  # imports=mypkg.metrics: one module
        names = [names]
    if not all(isinstance(name, str) for name in names):
        raise ConfigError(f"{option}={names}: expected a list of module names, e.g. {option}=[mypkg.metrics]")
    for name in names:
        reason = why_not_importable(name, names_a_module=True)
        if reason is None:
            try:
                importlib.import_module(name)  # a dotted path to a class imports its module: refuse it below
            except ImportError:
                reason = f"{name} is not a module"
        if reason is not None:
            raise ConfigError(f"{option}: module {name} does not import: {reason}; expected modules {IMPORTABLE_FROM}")
