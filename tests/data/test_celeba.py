"""CelebA read from torchvision's layout (img_align_celeba/ + list_eval_partition.txt), no md5 sums needed."""
import re

import pytest
import torch

from gan.data import CelebADataModule, DatasetFormatError, DatasetNotFoundError
from gan.utils.errors import ConfigError
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


def test_what_is_missing_of_celeba_is_named_and_an_unextracted_archive_pointed_to(tmp_path):
    """A missing partition file, an unextracted zip and a file in the images' place all got "celeba not found in
    .../celeba" with the same fix (a data audit)."""
    from tests.data.fake_datasets import write_celeba

    write_celeba(tmp_path)
    folder = tmp_path / "celeba"
    (folder / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"celeba not found in .*celeba \(missing list_eval_partition.txt\); "):
        CelebADataModule(str(tmp_path)).prepare_data()
    for image in (folder / "img_align_celeba").iterdir():
        image.unlink()
    (folder / "img_align_celeba").rmdir()
    (folder / "img_align_celeba.zip").write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip
    with pytest.raises(DatasetNotFoundError, match=r"\(missing img_align_celeba/; missing list_eval_partition.txt; the archive "
                                                   r"img_align_celeba.zip is there, not extracted\); .*; fix: extract it "
                                                   r"where it is \(unzip .*img_align_celeba.zip -d .*celeba\); put the files"):
        CelebADataModule(str(tmp_path)).prepare_data()
    (folder / "img_align_celeba").write_text("a file")
    with pytest.raises(DatasetNotFoundError, match=r"\(img_align_celeba is a file, not a folder; missing "
                                                   r"list_eval_partition.txt\); "):
        CelebADataModule(str(tmp_path)).prepare_data()


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


def raises_exactly(error_type, pattern, call):
    with pytest.raises(error_type, match=pattern) as error:
        call()
    assert type(error.value) is error_type and "\n" not in str(error.value)
    return error.value


def test_images_smaller_than_the_center_crop_are_refused(tmp_path):
    # a pre-resized 64 x 64 copy: CenterCrop(178) padded it with black, 86% of every image, silently
    write_celeba(tmp_path, size=(64, 64))
    first = tmp_path / "celeba" / "img_align_celeba" / "000001.jpg"
    raises_exactly(ConfigError, rf"celeba: {re.escape(str(first))} is 64x64, smaller than data\.center_crop=178 \(CelebA's "
                   r"aligned faces are 178x218\); set data\.center_crop=null for images that are already cropped$",
                   lambda: CelebADataModule(str(tmp_path)).setup("fit"))
    # one side is enough: the first image of the split is the one looked at
    write_celeba(tmp_path / "narrow", partitions=(1, 0), size=(160, 400))
    first = tmp_path / "narrow" / "celeba" / "img_align_celeba" / "000002.jpg"
    raises_exactly(ConfigError, rf"celeba: {re.escape(str(first))} is 160x400, smaller than data\.center_crop=178 ",
                   lambda: CelebADataModule(str(tmp_path / "narrow"), split="train").setup("fit"))


def test_center_crop_null_in_the_config_reads_cropped_images_whole(tmp_path, make_cfg):
    from hydra.utils import instantiate

    from gan.utils.option_types import check_option_types
    from tests.conftest import tiny_overrides

    write_celeba(tmp_path, size=(64, 64))
    cfg = make_cfg(tiny_overrides("dcgan", "celeba") + [f"data.root={tmp_path}", "data.center_crop=null", "data.batch_size=4",
                                                         "data.num_workers=0"])
    check_option_types(cfg.data)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    images, _ = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 64, 64) and images.min() > 0.95  # white: nothing padded


@pytest.mark.parametrize("crop", [0, -5])
def test_a_center_crop_that_is_no_crop_is_refused(tmp_path, crop):
    raises_exactly(ConfigError, rf"data\.center_crop={crop} is not a crop; expected a positive number of pixels \(178: the "
                   r"face of an aligned 178x218 image\), or null for images that are already cropped$",
                   lambda: CelebADataModule(str(tmp_path), center_crop=crop))


def test_images_extracted_one_folder_too_deep_are_pointed_to(tmp_path):
    write_celeba(tmp_path)
    images = tmp_path / "celeba" / "img_align_celeba"
    images.rename(tmp_path / "extracted")
    images.mkdir()
    (tmp_path / "extracted").rename(images / "img_align_celeba")  # unzipped into a folder of the zip's own folder name
    raises_exactly(DatasetFormatError, rf"celeba files in {re.escape(str(images))} cannot be parsed \(10 of the 10 all "
                   r"images listed in list_eval_partition\.txt are missing, e\.g\. 000001\.jpg, which is in "
                   rf"img_align_celeba/img_align_celeba/, one folder too deep\); move the images of "
                   rf"{re.escape(str(images / 'img_align_celeba'))} up into {re.escape(str(images))}$",
                   lambda: CelebADataModule(str(tmp_path)).setup("fit"))


def test_an_empty_split_says_which_splits_there_are(tmp_path):
    write_celeba(tmp_path, partitions=(0, 0, 0, 2))
    partition = tmp_path / "celeba" / "list_eval_partition.txt"
    raises_exactly(ConfigError, rf"data\.split='valid': {re.escape(str(partition))} lists no image in split 'valid' "
                   r"\(code 1\), only train \(3 images\) and test \(1 image\); set data\.split to train, test or all$",
                   lambda: CelebADataModule(str(tmp_path), split="valid").setup("fit"))
    partition.write_text("\n")
    raises_exactly(DatasetFormatError, rf"celeba files in {re.escape(str(partition))} cannot be parsed \(it lists no "
                   r"image, expected lines '<image file> <0\|1\|2>'\); replace them, or delete them and set "
                   r"data\.download=true$", lambda: CelebADataModule(str(tmp_path)).setup("fit"))


def test_the_178_px_center_crop_is_taken_before_the_resize_as_pil_crops_and_resizes(tmp_path):
    """The face box is the central 178x178 of the 178x218 image, resized to the resolution: a crop of the resolution's
    size (the central 64 px) passed the all-white test above (a mutation audit). The loaded image equals PIL's own
    crop((0, 20, 178, 198)) resized bilinearly, and a dark frame just inside the box reaches the edges."""
    import numpy as np
    from PIL import Image

    names = write_celeba(tmp_path)
    path = tmp_path / "celeba" / "img_align_celeba" / names[0]
    rows, cols = np.mgrid[0:218, 0:178]
    face = np.stack([cols * 255 // 177, (rows - 20).clip(0, 177) * 255 // 177, np.full_like(rows, 200)], -1)
    face = face.astype(np.uint8)
    face[20:198, 0:4] = face[20:198, 174:178] = 0  # a dark frame just inside the box
    face[20:24, :] = face[194:198, :] = 0
    face[:20] = face[198:] = 255  # white bands outside it
    Image.fromarray(face).save(path, quality=100)
    dm = CelebADataModule(str(tmp_path), resolution=64)
    dm.setup("fit")
    image = dm.train_set[0][0]
    with Image.open(path) as original:
        expected = original.convert("RGB").crop((0, 20, 178, 198)).resize((64, 64), Image.BILINEAR)
    expected = torch.from_numpy(np.asarray(expected).copy()).permute(2, 0, 1).float() / 127.5 - 1
    assert image.shape == (3, 64, 64)
    assert (image - expected).abs().max() <= 1.5 / 127.5
    for edge in (image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]):  # the frame, not the white bands
        assert edge.mean() < -0.5


def test_images_or_a_crop_smaller_than_the_resolution_are_said_to_be_upscaled(tmp_path, caplog):
    """A 64x64 copy read whole at data.resolution=128 was upscaled without a word, while image_folder says so (a README
    walk-through); the same for a crop smaller than the resolution. At or above it: no warning."""
    write_celeba(tmp_path, size=(64, 64))
    first = tmp_path / "celeba" / "img_align_celeba" / "000001.jpg"

    def warnings_of(**options):
        caplog.clear()
        with caplog.at_level("WARNING", logger="gan"):
            CelebADataModule(str(options.pop("root", tmp_path)), **options).setup("fit")
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    assert warnings_of(center_crop=None, resolution=128) == [
        f"celeba: {first.name} is 64x64, smaller than data.resolution=128 on its shorter side, so the images are upscaled "
        "and train blurred; expected images (or a crop) of at least 128 pixels, or a lower data.resolution"]
    assert warnings_of(center_crop=None, resolution=64) == []
    write_celeba(tmp_path / "aligned")  # 178x218
    said, = warnings_of(root=tmp_path / "aligned", resolution=256)
    assert said.startswith("celeba: data.center_crop=178, smaller than data.resolution=256 on its shorter side")
    assert warnings_of(root=tmp_path / "aligned", resolution=128) == []
