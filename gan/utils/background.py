"""File writes on one background thread, for work that releases the GIL (PNG encoding, torch kernels): the
training thread goes on meanwhile. Writes run in submission order; what follows a write (logging its file)
runs on the thread that collects it, so loggers are only ever called from the training thread."""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class BackgroundWriter:
    def __init__(self, name: str):
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[Future, Callable[[Any], None] | None]] = deque()

    def submit(self, write: Callable[..., Any], *args: Any, then: Callable[[Any], None] | None = None) -> None:
        """Run ``write(*args)`` in the background; ``then(its result)`` runs when it is collected."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        self._pending.append((self._executor.submit(write, *args), then))

    def collect(self, wait: bool = False) -> None:
        """Run ``then`` for every finished write, in order (with ``wait``: for all of them, waiting); a write's
        error is raised here."""
        while self._pending and (wait or self._pending[0][0].done()):
            future, then = self._pending.popleft()
            result = future.result()
            if then is not None:
                then(result)

    def close(self, collect: bool = True) -> None:
        """Wait for every write (and run what follows them unless ``collect`` is False), then end the thread."""
        try:
            if collect:
                self.collect(wait=True)
            else:
                for future, _ in self._pending:
                    future.exception()  # waits; a failed write is not raised while another error is on its way
                self._pending.clear()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
