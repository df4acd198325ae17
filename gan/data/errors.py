"""The two ways a data set on disk can be unusable, each reported as one line the user can act on.

Both are :class:`~gan.utils.errors.DataError`s, so ``train.py`` and ``evaluate.py`` print them as one line
and exit with status 2."""
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
        self.searched = str(searched)
        because = f" ({reason})" if reason else ""
        super().__init__(f"{name} not found in {self.searched}{because}; expected {layout}; fix: {fix}")


class DatasetFormatError(DataError, ValueError):
    """The files are there but cannot be parsed (a truncated pickle, a wrong idx magic number ...); still a
    ValueError, as it was before the framework had its own error types."""

    def __init__(self, name: str, path: str | os.PathLike, error: BaseException | str):
        super().__init__(f"{name} files in {path} cannot be parsed ({one_line(error)}); "
                         "replace them, or delete them and set data.download=true")
