"""The framework's user errors: mistakes a user can fix (a bad option, missing data, a corrupt checkpoint).

Entry points (``train.py``, ``evaluate.py``) print a :class:`UserError` as one line, ``error: <message>``, and
exit with status 2; every other exception keeps its traceback, since it is a bug to report. Each subclass
also derives from the built-in type code and tests already expect (``ValueError``, ``FileNotFoundError``,
``RuntimeError``), so raising the specific type changes nothing for callers that catch the built-in one.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix; the message names the bad value and what was expected."""


class ConfigError(UserError, ValueError):
    """An option out of range, an unknown choice, or options that do not fit together."""


class DataError(UserError, FileNotFoundError):
    """A data set that is missing or cannot be read."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, truncated, or not written by this framework."""
