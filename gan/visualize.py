"""Pictures of samples, shared by the sample-grid callback and evaluate.py: an image grid for image data,
a scatter plot over the real modes for 2D data."""
from __future__ import annotations

import math
from pathlib import Path

from torch import Tensor


def save_image_grid(images: Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Images in [-1, 1], shape (N, C, H, W), tiled ``nrow`` per row (a square by default)."""
    from torchvision.utils import save_image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(images.size(0)))))
    save_image(images.detach().float().cpu().clamp(-1, 1), path, nrow=nrow, normalize=True, value_range=(-1, 1), padding=2)
    return path


def save_scatter(points: Tensor, path: str | Path, modes: Tensor | None = None, title: str | None = None) -> Path:
    """2D samples as dots, the real mixture's means as red crosses.

    Drawn with matplotlib's object API on a fixed layout: no pyplot figure manager and no ``tight_layout``
    pass, which together took a third of the plot's time (66 -> 45 ms per plot on the 2-core CPU, a toy
    run's sample grid every 250 steps)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    points = points.detach().float().cpu().numpy()
    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.1, 0.07, 0.86, 0.86))  # room for the tick labels and the title
    ax.plot(points[:, 0], points[:, 1], ".", ms=2.5, alpha=0.5, label="generated")
    if modes is not None:
        modes = modes.detach().float().cpu()
        ax.plot(modes[:, 0].numpy(), modes[:, 1].numpy(), "x", ms=7, c="red", label="real modes")
        span = float(modes.abs().max()) * 1.5 + 0.5
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.savefig(path)
    return path


def save_samples(samples: Tensor, path: str | Path, modes: Tensor | None = None, title: str | None = None,
                 nrow: int | None = None) -> Path:
    """An image grid for (N, C, H, W) samples, a scatter plot for (N, 2) samples."""
    if samples.dim() == 4:
        return save_image_grid(samples, path, nrow)
    if samples.dim() == 2 and samples.size(1) == 2:
        return save_scatter(samples, path, modes, title)
    raise ValueError(f"cannot picture samples of shape {tuple(samples.shape)}: expected (N, C, H, W) or (N, 2)")
