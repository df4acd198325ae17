"""What the console shows: a DDP process other than rank 0 shows errors only."""
import io
import logging

import pytest

from gan.utils.console import console_once_per_run


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_other_than_zero_shows_errors_on_the_console_and_keeps_everything_in_its_file(monkeypatch, tmp_path, rank):
    """Rank 1's console drops info and warning lines (said by rank 0 already) but not errors, which may be its alone;
    its log file keeps all (a mutation audit: errors were dropped too)."""
    from lightning.pytorch.utilities import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", rank)
    root = logging.getLogger()
    console, file = logging.StreamHandler(io.StringIO()), logging.FileHandler(tmp_path / "process.log")
    before = root.handlers[:]  # pytest's own handlers are left out: none of them may keep the filter
    root.handlers[:] = [console, file]
    try:
        console_once_per_run()
        console_once_per_run()  # idempotent: one filter
    finally:
        root.handlers[:] = before
    levels = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
    for level in levels:
        record = logging.LogRecord("gan", level, __file__, 1, f"line at {logging.getLevelName(level)}", None, None)
        for handler in (console, file):
            handler.handle(record)
    file.close()
    shown = console.stream.getvalue().splitlines()
    assert shown == (["line at INFO", "line at WARNING"] if rank == 0 else []) + ["line at ERROR", "line at CRITICAL"]
    assert len(console.filters) == (rank != 0) and not file.filters
    assert (tmp_path / "process.log").read_text().splitlines() == [f"line at {logging.getLevelName(level)}" for level in levels]
