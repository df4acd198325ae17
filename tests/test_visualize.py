"""The scatter plot drawn over a kept background is the same picture as a full matplotlib draw."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gan.visualize import ScatterPlot, save_samples


def full_draw(points: torch.Tensor, path, modes: torch.Tensor | None, title: str) -> None:
    """The reference: the same figure built from scratch and drawn whole by ``savefig``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.07, 0.86, 0.86))
    ax.plot(points[:, 0].numpy(), points[:, 1].numpy(), ".", ms=2.5, alpha=0.5, label="generated")
    if modes is not None:
        ax.plot(modes[:, 0].numpy(), modes[:, 1].numpy(), "x", ms=7, c="red", label="real modes")
        span = float(modes.abs().max()) * 1.5 + 0.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    fig.savefig(path)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


def grid_modes() -> torch.Tensor:
    axis = torch.arange(-2, 3, dtype=torch.float32) * 2
    return torch.cartesian_prod(axis, axis)


def test_every_save_of_a_kept_plot_is_the_full_draw_pixel_for_pixel(tmp_path):
    modes = grid_modes()
    plot = ScatterPlot(modes)
    generator = torch.Generator().manual_seed(0)
    for step, scale in ((250, 3.0), (500, 0.5), (750, 1.5)):  # later dots must not keep earlier ones
        points = torch.randn(1024, 2, generator=generator) * scale
        title = f"generator step {step}"
        plot.save(points, tmp_path / f"kept_{step}.png", title=title)
        full_draw(points, tmp_path / f"full_{step}.png", modes, title)
        kept, full = pixels(tmp_path / f"kept_{step}.png"), pixels(tmp_path / f"full_{step}.png")
        assert kept.shape == full.shape == (500, 500, 4)
        assert np.array_equal(kept, full), f"step {step}: {(kept != full).any(-1).sum()} pixels differ"
    # the dots are really drawn: the pictures of the three point sets differ
    assert not np.array_equal(pixels(tmp_path / "kept_250.png"), pixels(tmp_path / "kept_500.png"))


def test_a_plot_without_modes_follows_its_points(tmp_path):
    plot = ScatterPlot(None)
    near = torch.randn(256, 2, generator=torch.Generator().manual_seed(1))
    plot.save(near, tmp_path / "near.png", title="near")
    plot.save(near * 100, tmp_path / "far.png", title="near")
    # autoscaled axes: the same cloud 100x larger fills the same region, only the tick labels change
    assert plot.axes.get_xlim()[1] > 50
    near_pixels, far_pixels = pixels(tmp_path / "near.png"), pixels(tmp_path / "far.png")
    assert not np.array_equal(near_pixels, far_pixels)


def test_save_samples_dispatches_on_shape(tmp_path):
    assert save_samples(torch.rand(4, 3, 8, 8) * 2 - 1, tmp_path / "grid.png").exists()
    path = save_samples(torch.randn(64, 2), tmp_path / "scatter.png", grid_modes(), title="t")
    assert pixels(path).shape == (500, 500, 4)
    with pytest.raises(ValueError, match=r"\(5, 3\)"):
        save_samples(torch.randn(5, 3), tmp_path / "bad.png")


def test_an_image_grid_is_as_square_as_its_count_allows(tmp_path):
    # 10 images of 8 px with 2 px padding: 4 columns (ceil(sqrt(10))) and 3 rows; floor gave 3 columns and 4 rows
    from PIL import Image

    from gan.visualize import save_image_grid

    path = save_image_grid(torch.zeros(10, 1, 8, 8), tmp_path / "grid.png")
    with Image.open(path) as grid:
        assert grid.size == (4 * 10 + 2, 3 * 10 + 2)


def test_an_image_grid_maps_the_fixed_range_minus_one_to_one_onto_0_to_255(tmp_path):
    """[-1, 1] maps to [0, 255] whatever the grid holds: normalised by each grid's own min and max, an all-zero grid
    came out black and a low-contrast one stretched to full contrast (a mutation audit). A grid of one image is that
    image, without padding."""
    from gan.visualize import save_image_grid

    def saved(images, name):
        with Image.open(save_image_grid(images, tmp_path / name)) as grid:
            assert grid.size == (8, 8)
            return np.asarray(grid.convert("L")).astype(int)

    assert (saved(torch.zeros(1, 1, 8, 8), "zeros.png") == 128).all()  # 0.5 * 255 + 0.5, rounded down
    ramp = torch.linspace(-0.5, 0.5, 64).reshape(1, 1, 8, 8)
    expected = np.floor((ramp[0, 0].numpy() + 1) / 2 * 255 + 0.5).astype(int)
    got = saved(ramp, "ramp.png")
    assert np.abs(got - expected).max() <= 1 and got.min() in (63, 64) and got.max() in (191, 192)
