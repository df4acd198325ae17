"""CelebA read from torchvision's layout (img_align_celeba/ + list_eval_partition.txt), no md5 sums needed."""
import pytest
import torch

from gan.data import CelebADataModule, DatasetFormatError, DatasetNotFoundError
from tests.data.fake_datasets import write_celeba


@pytest.mark.parametrize("split,size", [("all", 10), ("train", 6), ("valid", 2), ("test", 2)])
def test_partition_file_selects_the_split(tmp_path, split, size):
    write_celeba(tmp_path)
    dm = CelebADataModule(str(tmp_path), split=split)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == size and dm.num_classes is None


@pytest.mark.parametrize("resolution", [64, 128])
def test_center_crop_178_keeps_the_face_and_resizes(tmp_path, resolution):
    write_celeba(tmp_path)  # a white 178 x 178 center between black bands
    dm = CelebADataModule(str(tmp_path), resolution=resolution, batch_size=4)
    dm.setup("fit")
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, resolution, resolution) and dm.sample_shape == (3, resolution, resolution)
    assert torch.equal(labels, torch.full((4,), -1))
    # no black band survives the crop, and the face is not squashed (JPEG: not exactly 1)
    assert images.min() > 0.95 and images.max() <= 1.0


def test_missing_celeba_says_where_and_what_to_put_there(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        CelebADataModule(str(tmp_path)).prepare_data()
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "celeba") in message
    assert "img_align_celeba" in message and "list_eval_partition.txt" in message and "data.root" in message


def test_failed_download_is_reported_as_not_found(tmp_path, monkeypatch):
    import gan.data.celeba as celeba

    def refuse(folder):
        raise RuntimeError("Google Drive quota exceeded\nfor this file")

    monkeypatch.setattr(celeba, "download_celeba", refuse)
    with pytest.raises(DatasetNotFoundError, match=r"download failed: RuntimeError: Google Drive quota exceeded for this file"):
        CelebADataModule(str(tmp_path), download=True).prepare_data()


def test_listed_images_missing_from_disk_or_bad_lines_are_clear_errors(tmp_path):
    names = write_celeba(tmp_path)
    (tmp_path / "celeba" / "img_align_celeba" / names[2]).unlink()
    with pytest.raises(DatasetFormatError, match=rf"1 of the 10 all images .* missing, e.g. {names[2]}"):
        CelebADataModule(str(tmp_path)).setup("fit")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg train\n")
    with pytest.raises(DatasetFormatError, match=r"line 1 is '000001.jpg train', expected '<image file> <0\|1\|2>'"):
        CelebADataModule(str(tmp_path)).setup("fit")
