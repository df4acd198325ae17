"""BackgroundWriter: writes run on another thread, in order; what follows them runs on the collecting thread."""
import threading

import pytest

from gan.utils.background import BackgroundWriter


def test_writes_run_in_order_on_another_thread_and_follow_ups_on_the_collector():
    release = threading.Event()
    writer, written, followed = BackgroundWriter("test"), [], []

    def write(n):
        if n == 0:
            release.wait(60)  # the first write blocks: nothing after it may be collected before it
        written.append((n, threading.current_thread().name))
        return n * 10

    for n in range(3):
        writer.submit(write, n, then=lambda result: followed.append((result, threading.current_thread().name)))
    writer.collect()  # nothing finished yet: returns at once, follows nothing
    assert followed == []
    release.set()
    writer.close()
    assert [n for n, _ in written] == [0, 1, 2] and all(name.startswith("test") for _, name in written)
    assert followed == [(0, threading.current_thread().name), (10, threading.current_thread().name), (20, threading.current_thread().name)]


def test_a_failed_write_is_raised_when_collected_and_the_thread_still_ends():
    writer = BackgroundWriter("test")
    writer.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        writer.close()
    assert writer._executor is None


def test_close_without_collecting_waits_and_drops_the_follow_ups():
    writer, followed = BackgroundWriter("test"), []
    writer.submit(lambda: 1 / 0, then=followed.append)
    writer.submit(lambda: 2, then=followed.append)
    writer.close(collect=False)  # an error elsewhere is on its way: neither raised nor followed
    assert followed == [] and writer._executor is None


def test_a_collect_after_close_without_collecting_follows_none_of_the_closed_work():
    """The writer is used again after an interrupted fit (a later fit's sample grids): the dropped follow-ups
    must not run then, nor the first write's error be raised there (a mutation audit: close kept them pending)."""
    writer, followed = BackgroundWriter("test"), []
    writer.submit(lambda: 1 / 0, then=followed.append)
    writer.submit(lambda: 2, then=followed.append)
    writer.close(collect=False)
    writer.collect(wait=True)
    assert followed == []
    writer.submit(lambda: 3, then=followed.append)  # new work after the close: a fresh thread, followed as usual
    writer.close()
    assert followed == [3] and writer._executor is None
