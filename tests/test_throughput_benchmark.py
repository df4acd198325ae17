"""benchmarks/throughput.py's clock and counts: the window it times and the real images an iteration reads."""
from types import SimpleNamespace

import pytest

from benchmarks import throughput
from tests.conftest import TINY_NETS


def test_the_clock_stops_at_the_last_generator_step_not_at_the_end_of_training(monkeypatch):
    """The end of training adds the last batch's logging and Lightning's teardown, which the bare loop's clock
    leaves out (an audit: ~8 ms, a small bias against the framework's ratio to the bare loop)."""
    now = iter(range(100, 1000, 10))
    monkeypatch.setattr(throughput.StepClock, "_now", staticmethod(lambda: next(now)))
    clock, module = throughput.StepClock(warmup=2, total=5), SimpleNamespace(generator_steps=0)
    for step in range(1, 6):
        module.generator_steps = step
        clock.on_gan_iteration_end(None, module)  # reads the clock at steps 2 (start) and 5 (stop) only
    clock.on_train_end(None, module)  # the teardown's read is not taken
    assert (clock.steps, clock.seconds) == (3, 10)
    early = throughput.StepClock(warmup=2, total=50)  # a run that stopped early ends at the end of training
    for step in (2, 3):
        early.on_gan_iteration_end(None, SimpleNamespace(generator_steps=step))
    early.on_train_end(None, SimpleNamespace(generator_steps=3))
    assert early.steps == 1


@pytest.mark.slow
@pytest.mark.parametrize("model,net,batches_per_step", [("dcgan", "dcgan", 1), ("r3gan", "dcgan", 2), ("wgan_gp", "dcgan", 5)])
def test_images_per_second_count_every_real_batch_an_iteration_reads(tmp_path, model, net, batches_per_step):
    """r3gan's generator step reads a real batch too; images/s counted n_critic batches alone (an audit)."""
    row = throughput.measure([f"model={model}", "data=digits", "data.batch_size=8", *TINY_NETS[net]], "32-true", False,
                             steps=4, warmup=2, out_dir=tmp_path)
    assert row["images_per_s"] == pytest.approx(row["generator_steps_per_s"] * batches_per_step * 8, rel=0.01)
