"""User errors of an evaluation, caught before any sample is drawn or feature extracted: bad image folders,
too few samples for a metric, options of evaluate.py that do not fit together."""
from __future__ import annotations

import logging
import re

import pytest
from omegaconf import OmegaConf

from evaluate import evaluate
from gan.metrics import MetricSuite, image_folder_batches
from gan.utils.config import check_evaluate_options
from gan.utils.errors import ConfigError, DataError
from tests.metrics.conftest import random_images, write_folder


def read_all(folder, batch_size=4):
    batches, count = image_folder_batches(folder, 3, batch_size)
    return list(batches), count


# ------------------------------------------------------------------------------------------ image folders
def test_an_image_folder_with_a_corrupt_or_truncated_file_names_it(tmp_path):
    folder = write_folder(random_images(3), tmp_path / "corrupt")
    (folder / "0001.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"fake_path=.*corrupt: cannot read 0001\.png \(.*\); expected a \.png or \.jpg"):
        read_all(folder)

    folder = write_folder(random_images(3), tmp_path / "truncated")
    data = (folder / "0002.png").read_bytes()
    (folder / "0002.png").write_bytes(data[:len(data) // 2])  # the header reads, the pixels do not
    with pytest.raises(DataError, match=r"fake_path=.*truncated: cannot read 0002\.png"):
        read_all(folder)


def test_an_image_folder_of_two_sizes_names_both_files(tmp_path):
    folder = write_folder(random_images(2, size=16), tmp_path / "mixed")
    write_folder(random_images(1, size=20), tmp_path / "other")
    (tmp_path / "other" / "0000.png").rename(folder / "0009.png")
    # alone in the second batch: stacking each batch would not notice it
    with pytest.raises(DataError, match=r"fake_path=.*mixed: 0009\.png is 20x20 but 0000\.png is 16x16; expected images of one size"):
        read_all(folder, batch_size=2)
    assert read_all(write_folder(random_images(5), tmp_path / "fine"))[1] == 5


def test_an_image_folder_against_point_data_is_a_config_error(make_cfg, tmp_path):
    folder = write_folder(random_images(3), tmp_path / "images")
    with pytest.raises(ConfigError, match=r"the data's samples have 2 channels"):
        image_folder_batches(folder, 2, 4)
    cfg = make_cfg([f"fake_path={folder}", "data=toy2d_grid", "metrics=[mode_coverage]"], config_name="evaluate",
                   output_dir=tmp_path / "eval")
    with pytest.raises(ConfigError, match=r"fake_path=.*images: a folder is scored as image data, but data toy2d_grid "
                                          r"yields points"):
        evaluate(cfg)


# ----------------------------------------------------------------------------------- minimum counts
@pytest.mark.parametrize("compute, counts, message", [
    (["fid_digits"], {"num_samples": 1}, r"^metrics\.num_samples=1: fid_digits needs at least 2 samples$"),
    (["fid"], {"num_real": 1}, r"^metrics\.num_real=1: fid needs at least 2 samples$"),
    (["kid"], {"num_samples": 1}, r"^metrics\.num_samples=1: kid needs at least 2 samples$"),
    ({"prc": {"num_samples": 3}}, {}, r"^metrics\.compute\.prc\.num_samples=3: prc with metrics\.compute\.prc\.neighborhood=3 needs at least 4 "
                                       r"samples; expected more samples or a smaller metrics\.compute\.prc\.neighborhood$"),
    (["density_coverage"], {"num_real": 5}, r"^metrics\.num_real=5: density_coverage with metrics\.compute\.density_coverage\.neighborhood=5 needs at least 6 samples; "
                                                r"expected more samples or a smaller metrics\.compute\.density_coverage\.neighborhood$"),
    ({"density_coverage": {"neighborhood": 2}}, {"num_samples": 2}, r"^metrics\.num_samples=2: density_coverage with metrics\.compute\.density_coverage\.neighborhood=2 needs at least 3"),
    # a k of 1e12 blamed metrics.num_samples alone (an audit)
    ({"prc": {"neighborhood": 10**12}}, {}, r"^metrics\.num_samples=1000: prc with metrics\.compute\.prc\.neighborhood="
                                           r"1000000000000 needs at least 1000000000001 samples; expected more samples or a "
                                           r"smaller metrics\.compute\.prc\.neighborhood$"),
    (["is"], {"num_samples": 5}, r"^metrics\.num_samples=5: is with metrics\.compute\.is\.splits=10 needs at least 10 samples; expected more "
                                         r"samples or a smaller metrics\.compute\.is\.splits$"),  # one per split
    # fid_inf's sample counts (15 from 10 % of the fakes) that do not fit the fakes failed only when it scored
    ({"fid_inf": {"extractor": "digit_classifier"}}, {"num_samples": 2},
     r"^metrics\.compute\.fid_inf: sample counts \[2\] need at least two distinct values between 2 and the 2 fakes"),
])
def test_too_few_samples_for_a_metric_fail_when_the_suite_is_built(compute, counts, message):
    with pytest.raises(ConfigError, match=message):
        MetricSuite(compute, **counts)


def test_evaluate_names_the_sample_count_the_user_set(make_cfg, tmp_path):
    """evaluate.py's metrics.num_samples interpolates its top-level num_samples: a count refused names the option
    the user set (it said metrics.num_samples=1 to a user who wrote num_samples=1)."""
    for option in ("num_samples", "metrics.num_samples"):
        cfg = make_cfg(["fake_path=/nonexistent", "data=digits", "metrics=[fid_digits]", f"{option}=1"],
                       config_name="evaluate", output_dir=tmp_path / option)
        with pytest.raises(ConfigError, match=rf"^{re.escape(option)}=1: fid_digits needs at least 2 samples$"):
            evaluate(cfg)


def test_metrics_without_reals_take_any_number_of_them():
    MetricSuite(["fid_digits"], num_samples=2, num_real=2)
    MetricSuite(["mode_coverage"], num_real=1)


def test_a_folder_with_too_few_or_fewer_images_than_asked(make_cfg, tmp_path, caplog):
    def run(count: int, name: str):
        folder = write_folder(random_images(count, channels=1, size=28), tmp_path / name)
        cfg = make_cfg([f"fake_path={folder}", "data=digits", "metrics=[fid_digits]", "num_samples=10",
                        "metrics.num_real=50"], config_name="evaluate", output_dir=tmp_path / f"eval_{name}")
        return evaluate(cfg)

    with pytest.raises(DataError, match=r"^fake_path=.*one holds 1 images: fid_digits needs at least 2$"):
        run(1, "one")
    with caplog.at_level(logging.WARNING, logger="gan"):
        report = run(5, "five")
    assert report["protocol"]["metrics"]["fid_digits"]["num_fake"] == 5  # what was scored is recorded
    assert any(record.levelno == logging.WARNING and "five holds 5 images, fewer than asked for (fid_digits 10)" in record.getMessage()
               for record in caplog.records)


# ------------------------------------------------------------------------------------ evaluate options
def options(**changes):
    return OmegaConf.create({"seed": 0, "num_samples": 10, "num_images": 4, "num_points": 10,
                             "interpolation": {"rows": 0, "steps": 2}, "use_ema": True, "device": "cpu",
                             "ckpt_path": None, "fake_path": None, "seeds": None, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"ckpt_path": "run/last.ckpt", "seeds": [0, 0]}, r"^seeds=\[0, 0\] repeats \[0\]: expected distinct latent seeds$"),
    ({"ckpt_path": "run/last.ckpt", "seeds": [2, 1, 2, 3, 1]}, r"^seeds=\[2, 1, 2, 3, 1\] repeats \[1, 2\]"),
    ({"ckpt_path": "run/last.ckpt", "fake_path": "samples"}, r"^ckpt_path=run/last\.ckpt and fake_path=samples: .*give one of them$"),
    ({"fake_path": "samples", "seeds": [0, 1, 2]}, r"^seeds=\[0, 1, 2\] with fake_path=samples: a folder of images has no latent seeds"),
    # a traceback from inside the comparison before (a mutation audit)
    ({"fake_path": "samples", "compare_with": "base/last.ckpt"}, r"^compare_with=base/last\.ckpt with fake_path=samples: a "
                                                                r"comparison is of checkpoints' runs; expected ckpt_path= with compare_with=$"),
    ({"ckpt_path": "run/last.ckpt", "ckpt_name": -1}, r"^ckpt_name=-1 is not valid: expected a path \(a string\), or null$"),
    ({"fake_path": 3}, r"^fake_path=3 is not valid: expected a path"),  # a TypeError inside pathlib (an audit)
])
def test_evaluate_options_that_would_be_ignored_or_repeated_are_rejected(changes, message):
    with pytest.raises(ConfigError, match=message):
        check_evaluate_options(options(**changes))


def test_evaluate_options_that_fit_together_pass():
    check_evaluate_options(options(ckpt_path="run/last.ckpt", seeds=[0, 1, 2]))
    check_evaluate_options(options(fake_path="samples"))
    check_evaluate_options(options(ckpt_path="run/last.ckpt"))


def test_a_runs_checkpoints_folder_names_its_checkpoint(tmp_path):
    """ckpt_path=<run>/checkpoints used to match no checkpoint (only <job>/checkpoints/<name> below it was looked for)."""
    from evaluate import find_checkpoints
    from gan.utils.errors import CheckpointError

    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "last.ckpt").write_bytes(b"")
    (folder / "best.ckpt").write_bytes(b"")
    assert find_checkpoints(str(folder)) == [str(folder / "last.ckpt")]
    assert find_checkpoints(str(folder), "best.ckpt") == [str(folder / "best.ckpt")]
    assert find_checkpoints(str(tmp_path)) == [str(folder / "last.ckpt")]  # a run or multirun folder, as before
    with pytest.raises(CheckpointError, match=r"matches no checkpoint \(looked for <job>/checkpoints/step\.ckpt below it\)"):
        find_checkpoints(str(folder), "step.ckpt")


@pytest.mark.parametrize("output_dir, reason", [("afile", "File exists"), ("afile/sub", "Not a directory")])
def test_an_output_folder_that_cannot_be_written_is_refused_before_anything_is_loaded(make_cfg, tmp_path, output_dir, reason):
    """As train.py refuses it: evaluate.py failed with a FileExistsError or NotADirectoryError traceback, after the
    checkpoint, the metrics and the data were loaded. The checkpoint here is missing: refused first, it would
    say so instead."""
    (tmp_path / "afile").write_text("a file where the output folder should be")
    folder = tmp_path / output_dir
    cfg = make_cfg([f"ckpt_path={tmp_path / 'missing.ckpt'}"], config_name="evaluate", output_dir=folder)
    with pytest.raises(ConfigError, match=rf"^paths\.output_dir={re.escape(str(folder))}: cannot write there \({reason}\); "
                                          r"expected a folder this user can create and write$"):
        evaluate(cfg)


def test_a_folder_scored_without_metrics_is_refused_naming_the_data_s_selection(make_cfg, tmp_path):
    """A checkpoint lends its run's selection; a folder has none, and scored nothing with status 0 (an audit)."""
    folder = write_folder(random_images(4, channels=1, size=28), tmp_path / "fakes")
    cfg = make_cfg([f"fake_path={folder}", "data=digits"], config_name="evaluate", output_dir=tmp_path / "eval")
    with pytest.raises(ConfigError, match=rf"^fake_path={re.escape(str(folder))}: a folder has no run whose metrics to "
                                          r"use; expected metrics=\.\.\. \(e\.g\. metrics=digits, the data's own selection\)$"):
        evaluate(cfg)
