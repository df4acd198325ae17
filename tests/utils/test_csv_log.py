"""A resumed run's CSV log: the rows up to the checkpoint kept, the rest dropped, nothing lost to Lightning's buffer."""
import csv

import pytest
from lightning.pytorch.loggers import CSVLogger

from gan.utils.csv_log import ContinuedCSVWriter, flush_csv_logs

HEADER = "epoch,step,train/g/loss,train/generator_step,lr\n"


def test_rows_after_the_checkpoint_a_cut_row_and_other_clients_rows_past_it_are_dropped(tmp_path):
    rows = ["0,0,1.0,1.0,", "0,1,,,0.1", "0,1,0.9,2.0,",  # generator steps 1 and 2, and an lr row of another client
            "0,2,,,0.1", "0,2,0.8,3.0,", "0,3,0.7,4"]  # after the checkpoint (step 2), the last row cut short by a crash
    (tmp_path / "metrics.csv").write_text(HEADER + "\n".join(rows))
    writer = ContinuedCSVWriter(str(tmp_path), through=2)
    # the header sorted, as Lightning's writer keeps its keys (a header in another order took rows in the wrong columns)
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,lr,step,train/g/loss,train/generator_step",
                                                                   "0,,0,1.0,1.0", "0,0.1,1,,", "0,,1,0.9,2.0"]
    assert writer.metrics_keys == ["epoch", "lr", "step", "train/g/loss", "train/generator_step"]
    writer.log_metrics({"epoch": 0, "train/g/loss": 0.5, "train/generator_step": 3.0}, step=2)  # the resumed run goes on
    writer.save()
    assert (tmp_path / "metrics.csv").read_text().splitlines()[-1] == "0,,2,0.5,3.0"


def test_rows_held_in_memory_are_written_when_a_checkpoint_is_saved(tmp_path):
    """Lightning's CSV logger writes every 100 logged rows: a run killed hard after a checkpoint lost the rows
    before it (a review); the checkpoint callback flushes them."""
    logger = CSVLogger(str(tmp_path), name="csv", version="")
    logger.log_metrics({"train/g/loss": 1.0, "train/generator_step": 1.0}, step=0)
    assert not (tmp_path / "csv" / "metrics.csv").exists()  # held in memory
    flush_csv_logs([logger])
    assert "1.0" in (tmp_path / "csv" / "metrics.csv").read_text()


def test_a_crash_while_the_kept_rows_are_written_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    """The kept rows go to a temporary file moved over metrics.csv: rewritten in place, a crash during the rewrite
    lost every row not yet written back."""
    text = HEADER + "\n".join(f"0,{i},{1 - i / 10},{i + 1}.0," for i in range(5))
    (tmp_path / "metrics.csv").write_text(text)

    def crash(self, rows):
        next(iter(rows))
        raise OSError("disk gone")

    monkeypatch.setattr(csv.DictWriter, "writerows", crash)
    with pytest.raises(OSError, match="disk gone"):
        ContinuedCSVWriter(str(tmp_path), through=3)
    assert (tmp_path / "metrics.csv").read_text() == text
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary file left
