"""Any folder of images: recursive, mixed formats and modes, unreadable files skipped with one warning."""
import logging

import pytest
import torch

from gan.data import DatasetNotFoundError, ImageFolderDataModule
from tests.data.fake_datasets import write_image_tree


@pytest.mark.parametrize("channels", [3, 1])
def test_tree_of_png_jpg_webp_and_grayscale_loads_at_resolution(tmp_path, caplog, channels):
    files = write_image_tree(tmp_path / "images")
    dm = ImageFolderDataModule(path=str(tmp_path / "images"), root=str(tmp_path), resolution=32, channels=channels, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="gan"):
        dm.setup("fit")
    readable = sorted(files[k] for k in ("rgb_png", "jpg", "gray_png", "webp"))
    assert sorted(dm.train_set.paths) == readable  # notes.txt ignored, the two broken files dropped
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 2 of 6 files" in warnings[0].getMessage()
    assert "corrupt.png" in warnings[0].getMessage() and "truncated.jpg" in warnings[0].getMessage()
    batches = list(dm.train_dataloader())  # a whole epoch without a crash
    assert len(batches) == 2
    for images, labels in batches:
        assert images.shape == (2, channels, 32, 32) and torch.equal(labels, torch.tensor([-1, -1]))
        assert images.min() >= -1 and images.max() <= 1
    gray = dm.train_set[dm.train_set.paths.index(files["gray_png"])][0]
    assert torch.allclose(gray, torch.full_like(gray, 200 / 127.5 - 1), atol=1e-6)  # gray 200 everywhere, in any mode


def test_non_square_image_is_resized_then_center_cropped(tmp_path):
    from PIL import Image

    left_right = torch.zeros(40, 120, dtype=torch.uint8)
    left_right[:, 40:80] = 255  # white middle third, black sides
    (tmp_path / "imgs").mkdir()
    Image.fromarray(left_right.numpy(), mode="L").save(tmp_path / "imgs" / "wide.png")
    dm = ImageFolderDataModule(path=str(tmp_path / "imgs"), root=str(tmp_path), resolution=20, channels=1)
    dm.setup("fit")
    image = dm.train_set[0][0]
    assert image.shape == (1, 20, 20)
    assert image[:, :, 2:-2].min() > 0.9  # the square crop is the white middle (the resize blurs the edges)


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetNotFoundError, match=r"image_folder not found in .*empty \(the folder holds no image files\); expected image files \(jpg, jpeg, png.*webp\).*fix: set data.path="):
        ImageFolderDataModule(path=str(tmp_path / "empty"), root=str(tmp_path)).setup("fit")
    with pytest.raises(DatasetNotFoundError, match=r"nowhere \(no such folder\)"):
        ImageFolderDataModule(path=str(tmp_path / "nowhere"), root=str(tmp_path)).prepare_data()
    (tmp_path / "notes.png").write_bytes(b"")  # a file where the folder should be: it is there, but no folder
    with pytest.raises(DatasetNotFoundError, match=r"notes.png \(a file, not a folder\)"):
        ImageFolderDataModule(path=str(tmp_path / "notes.png"), root=str(tmp_path)).prepare_data()


def test_folder_of_only_broken_files_is_an_error_not_an_empty_epoch(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"garbage")
    with pytest.raises(DatasetNotFoundError, match=r"none of its 1 image files can be read or decoded \(e.g. a.png\)"):
        ImageFolderDataModule(path=str(tmp_path / "bad"), root=str(tmp_path)).setup("fit")
