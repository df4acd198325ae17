"""Pictures of samples, shared by the sample-grid callback and evaluate.py: an image grid for image data,
a scatter plot over the real modes for 2D data."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

import torch
from torch import Tensor


def save_image_grid(images: Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Images in [-1, 1], shape (N, C, H, W), tiled ``nrow`` per row (a square by default)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.size(0)))))
    save_image(images.detach().float().cpu().clamp(-1, 1), path, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)
    return path


class ScatterPlot:
    """2D samples as dots over the real mixture's means (red crosses), drawn on a fixed layout.

    With the modes known the axes are fixed, so the ticks, tick labels and empty axes (most of a plot's
    drawing time) are drawn once and kept as a background. Each ``save`` restores it and draws the dots, the
    crosses, the frame (it covers dots cut at the edge), the legend and the title on top, in the order a full
    draw uses: the picture is the full draw's pixel for pixel (``tests/test_visualize.py``). A toy run's
    sample grid (every 1,000 generator steps under the toy presets, 250 with presets=none) keeps one plot: ~43 -> ~16
    ms a picture on the 2-core CPU. Without modes the axes follow the points, and every save is a full draw.
    """

    def __init__(self, modes: Tensor | None = None):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(5, 5), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_axes((0.1, 0.07, 0.86, 0.86))  # room for the tick labels and the title
        (self.dots,) = self.axes.plot([], [], ".", ms=2.5, alpha=0.5, label="generated")
        self.fixed = modes is not None
        if self.fixed:
            modes = modes.detach().float().cpu()
            (crosses,) = self.axes.plot(modes[:, 0].numpy(), modes[:, 1].numpy(), "x", ms=7, c="red", label="real modes")
            span = float(modes.abs().max()) * 1.5 + 0.5
            self.axes.set_xlim(-span, span)
            self.axes.set_ylim(-span, span)
        self.axes.set_aspect("equal")
        legend = self.axes.legend(loc="upper right", fontsize=8)
        self.title = self.axes.set_title("")
        # in the order (zorder) a full draw uses: lines, then the frame (which covers dots cut at the edge),
        # then the legend
        spines = list(self.axes.spines.values())
        self.foreground = [self.dots] + ([crosses] if self.fixed else []) + spines + [legend]
        self.background = None
        if self.fixed:
            for artist in self.foreground + [self.title]:
                artist.set_animated(True)  # left out of the background
            self.canvas.draw()
            self.background = self.canvas.copy_from_bbox(self.figure.bbox)

    def save(self, points: Tensor, path: str | Path, title: str | None = None) -> Path:
        return save_picture(self.draw(points, title), path)

    def draw(self, points: Tensor, title: str | None = None):
        """The picture of ``points`` as a PIL image of its own (the plot may draw the next one meanwhile)."""
        from PIL import Image

        points = points.detach().float().cpu().numpy()
        self.dots.set_data(points[:, 0], points[:, 1])
        self.title.set_text(title or "")
        if self.fixed:
            self.canvas.restore_region(self.background)
            for artist in self.foreground:
                self.axes.draw_artist(artist)
            self.figure.draw_artist(self.title)
        else:
            self.axes.relim()
            self.axes.autoscale_view()
            self.canvas.draw()
        width, height = self.canvas.get_width_height()
        return Image.frombuffer("RGBA", (width, height), self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1).copy()


def save_picture(picture, path: str | Path) -> Path:
    """A PIL image as a PNG file (its folders made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def picture_writer(samples: Tensor, modes: Tensor | None = None, title: str | None = None, nrow: int | None = None,
                   scatter: ScatterPlot | None = None) -> Callable[[str | Path], Path]:
    """What :func:`save_samples` does, split where the drawing ends: 2D samples are drawn now (matplotlib holds
    the GIL), and the returned function writes the file (tiling and PNG encoding, which release it), on any
    thread: the sample-grid callback writes in the background while training goes on."""
    if samples.dim() == 4:
        images = samples.detach().float().cpu()
        return lambda path: save_image_grid(images, path, nrow)
    if samples.dim() == 2 and samples.size(1) == 2:
        picture = (scatter if scatter is not None else ScatterPlot(modes)).draw(samples, title)
        return lambda path: save_picture(picture, path)
    raise ValueError(f"cannot picture samples of shape {tuple(samples.shape)}: expected (N, C, H, W) or (N, 2)")


def save_samples(samples: Tensor, path: str | Path, modes: Tensor | None = None, title: str | None = None,
                 nrow: int | None = None, scatter: ScatterPlot | None = None) -> Path:
    """An image grid for (N, C, H, W) samples, a scatter plot over ``modes`` for (N, 2) samples: on
    ``scatter`` when the caller keeps one (built over the same modes), else on a new plot."""
    return picture_writer(samples, modes, title, nrow, scatter)(path)


def class_grid(count: int, num_classes: int, device=None) -> tuple[int, torch.Tensor, int | None]:
    """A class-conditional grid of at most ``count`` images: the fixed codes it uses, the label of each image and
    the images per row. One row per class with the same ``count // num_classes`` codes down each column; with
    fewer images than classes, one image of each of ``count`` classes spread evenly over them (0, ..., the last),
    all from the first code, in a square: a row per class drew one image of every class instead (1,000 for
    acgan on Stacked MNIST at the default 64, in a single column), whatever ``count`` asked."""
    if count >= num_classes:
        per_class = count // num_classes
        return per_class, torch.arange(num_classes, device=device).repeat_interleave(per_class), per_class
    labels = torch.linspace(0, num_classes - 1, count, device=device).round().long()  # spaced >= 1 apart: distinct
    return 1, labels, None


def nearest_reals(fakes: Tensor, real_chunks: Iterable[Tensor], k: int) -> Tensor:
    """For each fake, the positions of its ``k`` nearest reals in pixel distance, nearest first, over reals that
    arrive in chunks (so a large image set is never held whole: a review found 10,000 256-px images stacked, then
    copied in float64)."""
    flat = fakes.detach().float().cpu().flatten(1)
    best_distance = torch.empty(len(flat), 0)
    best_index = torch.empty(len(flat), 0, dtype=torch.long)
    seen = 0
    for chunk in real_chunks:
        distances = torch.cdist(flat, chunk.detach().float().cpu().flatten(1))
        indices = torch.arange(seen, seen + len(chunk)).expand(len(flat), -1)
        seen += len(chunk)
        best_distance, order = torch.cat([best_distance, distances], 1).sort(dim=1, stable=True)
        best_index = torch.cat([best_index, indices], 1).gather(1, order)
        best_distance, best_index = best_distance[:, :k], best_index[:, :k]
    return best_index
