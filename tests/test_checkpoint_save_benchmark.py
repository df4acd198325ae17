"""benchmarks/checkpoint_save.py: both ways of saving last.ckpt are timed, and its records hold what they wrote."""
import json

from benchmarks import checkpoint_save
from tests.conftest import TINY_NETS, net_family


def test_both_modes_are_timed_and_a_second_name_leaves_half_the_bytes_on_disk(tmp_path):
    out = tmp_path / "save.jsonl"
    checkpoint_save.main(["--repeats", "2", "--intervals", "2", "--out", str(out), "--name", "tiny", "--",
                          "data.batch_size=8", *TINY_NETS[net_family("dcgan", "digits")]])
    (record,) = map(json.loads, out.read_text().splitlines())
    assert record["name"] == "tiny" and record["repeats"] == 2 and record["code"]
    full, linked = record["full"], record["second_name"]
    assert len(full["seconds_per_interval"]) == len(linked["seconds_per_interval"]) == 2
    assert all(s > 0 for s in full["seconds_per_interval"] + linked["seconds_per_interval"])
    # the same checkpoint either way; gstep_0000004.ckpt and last.ckpt are two files, or two names of one
    assert full["checkpoint_bytes"] == linked["checkpoint_bytes"] > 0
    assert full["on_disk_bytes"] == 2 * linked["on_disk_bytes"]
