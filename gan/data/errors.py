"""The two ways a data set on disk can be unusable, each reported as one line the user can act on.

Both are :class:`~gan.utils.errors.DataError`s, so ``train.py`` and ``evaluate.py`` print them as one line
and exit with status 2. Each keeps the parts its line is built from, so a data set read through another one's
module (Stacked MNIST reads MNIST's files) can say the same with a fix of its own (:meth:`with_fix`)."""
from __future__ import annotations

import os

from gan.utils.errors import DataError
from gan.utils.errors import one_line as single_line


def one_line(error: BaseException | str, limit: int = 300) -> str:
    """An exception as one line (torchvision's download errors list every mirror on its own line)."""
    text = single_line(error)[:limit]
    if not isinstance(error, BaseException):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class DatasetNotFoundError(DataError):
    """The files are not where the config points; raised by ``prepare_data``/``setup``, before any model is built."""

    def __init__(self, name: str, searched: str | os.PathLike, layout: str, fix: str, reason: str = ""):
        self.name, self.searched, self.layout, self.fix, self.reason = name, str(searched), layout, fix, reason
        because = f" ({reason})" if reason else ""
        super().__init__(f"{name} not found in {self.searched}{because}; expected {layout}; fix: {fix}")

    def with_fix(self, fix: str) -> DatasetNotFoundError:
        """The same error with another fix (the one that applies where these files are read from)."""
        return type(self)(self.name, self.searched, self.layout, fix, self.reason)


class DatasetFormatError(DataError, ValueError):
    """The files are there but cannot be parsed (a truncated pickle, a wrong idx magic number ...); still a
    ValueError, as it was before the framework had its own error types."""

    #: what to do about files that cannot be parsed, unless the raiser knows better
    FIX = "replace them, or delete them and set data.download=true"

    def __init__(self, name: str, path: str | os.PathLike, error: BaseException | str, fix: str | None = None):
        self.name, self.path, self.problem, self.fix = name, str(path), one_line(error), fix or self.FIX
        super().__init__(f"{name} files in {self.path} cannot be parsed ({self.problem}); {self.fix}")

    def with_fix(self, fix: str) -> DatasetFormatError:
        """The same error with another fix (the one that applies where these files are read from)."""
        return type(self)(self.name, self.path, self.problem, fix)
