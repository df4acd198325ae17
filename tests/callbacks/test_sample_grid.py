"""SampleGrid: images on the scalars' step axis, and its schedule carried through a checkpoint."""
from __future__ import annotations

import pytest

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


def test_a_toy_run_draws_its_axes_once_and_every_picture_is_a_fresh_plots(make_cfg, tmp_path, monkeypatch):
    import numpy as np
    import torch
    from PIL import Image

    from gan import visualize

    built = []
    original_init = visualize.ScatterPlot.__init__

    def counting_init(self, modes=None):
        built.append(modes)
        original_init(self, modes)

    monkeypatch.setattr(visualize.ScatterPlot, "__init__", counting_init)
    grids = []

    class KeepSamples(SampleGrid):  # what each render draws, to draw it again on a new plot afterwards
        def render(self, trainer, pl_module):
            super().render(trainer, pl_module)
            grids.append((self.last_path, pl_module.sample_fixed(self.num_points), trainer.datamodule.modes))

    _, objects = train(make_cfg(tiny_overrides("gan", data="toy2d_ring", steps=6) + ["metrics=none", "callbacks.sample_grid=null"]),
                       callbacks=[KeepSamples(dirpath=str(tmp_path / "grids"), every_n_generator_steps=2, num_points=64)])
    assert [path.name for path, _, _ in grids] == ["gstep_0000002.png", "gstep_0000004.png", "gstep_0000006.png"]
    assert len(built) == 1 and torch.equal(built[0], grids[0][2])  # built once, over the ring's modes
    # nothing of an earlier picture stays in a later one (a fresh plot is the full draw: tests/test_visualize.py)
    for path, samples, modes in grids:
        reference = visualize.ScatterPlot(modes).save(samples, tmp_path / "full.png", title=f"generator step {int(path.stem[6:])}")
        assert np.array_equal(np.asarray(Image.open(path)), np.asarray(Image.open(reference).convert("RGBA")))


def test_an_empty_grid_or_plot_is_refused(tmp_path):
    """num_points=0 drew an empty scatter at every interval, silently."""
    import pytest

    from gan.utils.errors import ConfigError

    for name in ("num_images", "num_points"):
        with pytest.raises(ConfigError, match=rf"^callbacks.sample_grid.{name}=0: expected a positive integer$"):
            SampleGrid(str(tmp_path), **{name: 0})
    assert SampleGrid(str(tmp_path), num_images=1, num_points=1).num_points == 1


def test_a_negative_interval_is_refused_and_zero_means_the_final_picture_only(tmp_path):
    """A negative interval drew only the final picture, as 0 does, without a word."""
    import pytest

    from gan.utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^callbacks.sample_grid.every_n_generator_steps=-5: expected an integer >= 0"):
        SampleGrid(str(tmp_path), every_n_generator_steps=-5)
    assert SampleGrid(str(tmp_path), every_n_generator_steps=0).batch_end_every_n_generator_steps == 0


def fixed_noise_module(codes: int = 1024, num_classes=None):
    import torch
    from types import SimpleNamespace

    return SimpleNamespace(fixed_noise=torch.zeros(codes, 2), num_classes=num_classes)


def test_more_samples_than_the_fixed_noise_codes_are_refused_before_training(tmp_path):
    """sample_fixed draws at most the module's fixed codes: num_images=200000 drew a grid of 1024, without a word."""
    import pytest
    from types import SimpleNamespace

    from gan.utils.errors import ConfigError

    images, points = SimpleNamespace(datamodule=SimpleNamespace(kind="image")), SimpleNamespace(datamodule=SimpleNamespace(kind="points"))
    with pytest.raises(ConfigError, match=r"^callbacks.sample_grid.num_images=200000: expected at most 1024, as many as the "
                                          r"module's fixed noise codes \(\+model.num_fixed_samples=1024 sets their number\)$"):
        SampleGrid(str(tmp_path), num_images=200000).setup(images, fixed_noise_module(), "fit")
    with pytest.raises(ConfigError, match=r"^callbacks.sample_grid.num_images=1025: expected at most 1024"):  # one past
        SampleGrid(str(tmp_path), num_images=1025).setup(images, fixed_noise_module(), "fit")
    SampleGrid(str(tmp_path), num_images=1024).setup(images, fixed_noise_module(), "fit")
    with pytest.raises(ConfigError, match=r"^callbacks.sample_grid.num_points=4096: expected at most 1024, as many as the "
                                          r"module's fixed noise codes \(\+model.num_fixed_samples=1024 sets their number\)$"):
        SampleGrid(str(tmp_path), num_points=4096).setup(points, fixed_noise_module(), "fit")
    # a conditional grid takes a row of codes per class: 2000 images of 10 classes are 200 codes
    with pytest.raises(ConfigError, match=r"^callbacks.sample_grid.num_images=20480: expected at most 10240, as many as the "
                                          r"module's fixed noise codes per class \(\+model.num_fixed_samples=1024 sets their number\)$"):
        SampleGrid(str(tmp_path), num_images=20480).setup(images, fixed_noise_module(num_classes=10), "fit")
    SampleGrid(str(tmp_path), num_images=2000).setup(images, fixed_noise_module(num_classes=10), "fit")
    SampleGrid(str(tmp_path), num_images=1024, num_points=200000).setup(images, fixed_noise_module(), "fit")  # points unused
    SampleGrid(str(tmp_path), num_points=1024, num_images=200000).setup(points, fixed_noise_module(), "fit")  # the default


@pytest.mark.parametrize("count,num_classes,codes,labels,nrow", [
    (30, 10, 3, [c for c in range(10) for _ in range(3)], 3),  # a row of 3 per class, the same 3 codes down the columns
    (10, 10, 1, list(range(10)), 1),
    (4, 10, 1, [0, 3, 6, 9], None),  # fewer than the classes: 4 of them, spread from the first to the last
    (1, 10, 1, [0], None),
])
def test_a_conditional_grid_has_a_row_per_class_or_at_most_the_images_asked_for(count, num_classes, codes, labels, nrow):
    from gan.visualize import class_grid

    used, drawn, per_row = class_grid(count, num_classes)
    assert (used, drawn.tolist(), per_row) == (codes, labels, nrow)
    assert len(drawn) <= count


def test_fewer_images_than_classes_draws_that_many_distinct_classes_spread_over_all():
    from gan.visualize import class_grid

    for num_classes in (10, 1000):
        for count in (c for c in (1, 2, 7, 64, num_classes - 1) if c < num_classes):
            codes, labels, nrow = class_grid(count, num_classes)
            assert codes == 1 and nrow is None and len(labels) == count == len(set(labels.tolist()))
            assert labels[0] == 0 and (count == 1 or labels[-1] == num_classes - 1)
            assert labels.min() >= 0 and labels.max() < num_classes and bool((labels.diff() > 0).all())


def test_samples_with_a_single_nan_give_no_grid_and_a_warning(tmp_path, caplog):
    """One NaN among finite samples is a diverged generator: no picture, one warning. A check that all samples
    were NaN (``any`` finite passed) drew the picture (a mutation audit)."""
    from types import SimpleNamespace

    import torch

    grid = SampleGrid(str(tmp_path), num_points=4)
    submitted = []
    grid._writer.submit = lambda write, path, then=None: submitted.append(path)
    trainer = SimpleNamespace(is_global_zero=True, datamodule=SimpleNamespace(kind="points", modes=None))
    samples = torch.tensor([[0.0, 1.0], [1.0, 0.0], [float("nan"), 0.5], [-1.0, 0.0]])
    module = SimpleNamespace(generator_steps=6, num_classes=None, device=torch.device("cpu"),
                             sample_fixed=lambda count: samples[:count])
    with caplog.at_level("WARNING", logger="gan"):
        grid.render(trainer, module, shown_at=0)
    assert submitted == [] and grid.last_path is None
    assert [r.getMessage() for r in caplog.records] == ["No sample grid at generator step 6: the samples hold NaN/Inf"]
    caplog.clear()
    samples[2, 0] = 0.0  # all finite: the picture is drawn
    with caplog.at_level("WARNING", logger="gan"):
        grid.render(trainer, module, shown_at=0)
    assert submitted == [tmp_path / "gstep_0000006.png"] and not caplog.records
    grid._writer.close(collect=False)
