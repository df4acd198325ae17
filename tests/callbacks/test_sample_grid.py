"""SampleGrid: images on the scalars' step axis, and its schedule carried through a checkpoint."""
from __future__ import annotations

from gan.callbacks import SampleGrid
from tests.conftest import tiny_overrides
from train import train


def test_tensorboard_images_sit_at_the_step_of_the_scalars_of_their_generator_step(make_cfg, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(make_cfg(tiny_overrides("dcgan", steps=4) + ["logger=tensorboard", "trainer.log_every_n_steps=1", "metrics=none"]))
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    generator_step_at = {event.step: event.value for event in events.Scalars("train/generator_step")}
    image_steps = [event.step for event in events.Images("samples")]
    # grids of generator steps 2 and 4 (every 2): at the x-position of the losses of those generator steps
    assert [generator_step_at[step] for step in image_steps] == [2.0, 4.0]


def test_schedule_survives_a_checkpoint_round_trip(tmp_path):
    grid = SampleGrid(dirpath=str(tmp_path), every_n_generator_steps=4)
    grid._last_rendered = 4
    resumed = SampleGrid(dirpath=str(tmp_path), every_n_generator_steps=4)
    resumed.load_state_dict(grid.state_dict())
    assert resumed._last_rendered == 4
