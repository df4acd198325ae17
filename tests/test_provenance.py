"""A run's provenance end to end: train.py's provenance.json and checkpoints, a resume on other code, the loggers'
config, evaluate.py's report and the reproduce benchmark's table."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from importlib import metadata

import torch
import yaml

from evaluate import evaluate
from gan.utils.config import PROJECT_ROOT
from gan.utils.provenance import describe_code
from tests.conftest import tiny_overrides
from train import train

RUN = tiny_overrides("dcgan", "toy2d_ring", steps=2) + ["metrics=none", "presets=none"]


def head_of(folder) -> str | None:
    if shutil.which("git") is None:
        return None
    done = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def test_a_run_records_its_code_in_its_folder_its_checkpoints_and_its_loggers_config(make_cfg, tmp_path, caplog):
    with caplog.at_level("INFO", logger="gan"):
        _, objects = train(make_cfg(RUN + ["logger=csv"], output_dir=tmp_path / "run"))
    history = json.loads((tmp_path / "run" / "provenance.json").read_text())
    said, = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Code: ")]
    software, hardware = history[0]["software"], history[0]["hardware"]
    assert said == (f"Code: {describe_code(history[0])}; torch {software['torch']}, Lightning {software['lightning']} on "
                    f"{', '.join(hardware['gpus']) or hardware['cpu'] + ' (' + str(hardware['cpu_count']) + ' cores)'} "
                    f"({tmp_path / 'run' / 'provenance.json'})")
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["provenance"] == history
    (start,) = history
    framework = start["code"]["framework"]
    assert start["from_generator_step"] == 0 and framework["commit"] == head_of(PROJECT_ROOT)
    if framework["dirty"]:  # a working tree with changes (a developer's): their diff is beside the record
        diff = (tmp_path / "run" / framework["diff_file"]).read_text()
        assert hashlib.sha256(diff.encode()).hexdigest() == framework["diff_sha256"]
    hparams = yaml.safe_load((tmp_path / "run" / "csv" / "hparams.yaml").read_text())
    module = objects["module"]
    assert hparams["parameters"] == {"generator": sum(p.numel() for p in module.generator.parameters()),
                                     "discriminator": sum(p.numel() for p in module.discriminator.parameters())}
    assert hparams["provenance"]["commit"] == framework["commit"]
    assert hparams["provenance"]["torch"] == metadata.version("torch")


def test_a_resume_adds_its_start_and_says_when_its_code_differs(make_cfg, tmp_path, caplog):
    train(make_cfg(RUN, output_dir=tmp_path / "run"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    first = checkpoint["provenance"][0]
    first["code"]["framework"].update(commit="0" * 40, dirty=False, diff_sha256=None)  # trained by other code
    torch.save(checkpoint, last)
    longer = [o for o in RUN if not o.startswith("generator_steps=")] + ["generator_steps=3", "ckpt_path=last"]
    with caplog.at_level("WARNING", logger="gan"):
        train(make_cfg(longer, output_dir=tmp_path / "run"))
    history = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert [start["from_generator_step"] for start in history] == [0, 2] and history[0] == first
    assert torch.load(last, weights_only=True)["provenance"] == history  # the next resume knows both
    said = [r.getMessage() for r in caplog.records if "other code" in r.getMessage()]
    if history[1]["code"]["framework"]["commit"] is None:  # no git here: nothing to compare, nothing said
        assert said == []
        return
    assert said == [f"resuming {last}: it trained with commit 000000000000; this process runs {describe_code(history[1])}, "
                    "so the steps after generator step 2 come from other code (provenance.json in the run folder records "
                    "both)"]


def test_a_checkpoint_without_provenance_resumes_with_a_placeholder_and_no_warning(make_cfg, tmp_path, caplog):
    train(make_cfg(RUN, output_dir=tmp_path / "run"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["provenance"]  # as written before 2026-12-07
    torch.save(checkpoint, last)
    longer = [o for o in RUN if not o.startswith("generator_steps=")] + ["generator_steps=3", "ckpt_path=last"]
    with caplog.at_level("WARNING", logger="gan"):
        train(make_cfg(longer, output_dir=tmp_path / "run"))
    placeholder, now = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert placeholder["code"] is None and "not recorded" in placeholder["note"] and now["from_generator_step"] == 2
    assert not [r for r in caplog.records if "other code" in r.getMessage()]


def test_evaluate_reports_the_code_that_trained_and_the_code_that_scored(make_cfg, tmp_path):
    train(make_cfg(RUN, output_dir=tmp_path / "run"))
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    report = evaluate(make_cfg([f"ckpt_path={last}", "metrics=none"], config_name="evaluate", output_dir=tmp_path / "eval"))
    written = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert written["checkpoint"]["provenance"] == torch.load(last, weights_only=True)["provenance"]
    assert written["provenance"]["code"]["framework"]["commit"] == head_of(PROJECT_ROOT)
    assert "from_generator_step" not in written["provenance"]  # an evaluation, not a start of training
    assert report["provenance"]["software"] == written["provenance"]["software"]


def test_a_reproduce_row_whose_seeds_ran_on_different_code_says_so():
    from benchmarks import reproduce
    from tests.test_reproduce_benchmark import SEEDS, toy_record

    code = lambda commit: {"code": {"framework": {"commit": commit, "dirty": False}, "own": []}}  # noqa: E731
    records = [toy_record("r3gan", seed, values) for seed, values in enumerate(SEEDS)]
    records[0]["provenance"], records[1]["provenance"] = [code("a" * 40)], [code("a" * 40)]
    text = reproduce.table(records, ["grid"])
    assert "Code of r3gan (100 steps): commit aaaaaaaaaaaa (seeds 0, 1); code not recorded (seed 2)" in text
    records[2]["provenance"] = [code("a" * 40)]
    assert "Code of" not in reproduce.table(records, ["grid"])  # one code: nothing to say


def test_evaluate_says_when_pooled_runs_were_trained_by_different_code_and_which_code_each_side_of_a_comparison_ran(
        make_cfg, tmp_path, caplog):
    for side in ("new", "baseline"):
        for seed in (0, 1):
            train(make_cfg(RUN + [f"seed={seed}"], output_dir=tmp_path / side / str(seed)))
    edited = tmp_path / "new" / "1" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(edited, weights_only=True)
    checkpoint["provenance"][0]["code"]["framework"].update(commit="0" * 40, dirty=False, diff_sha256=None)
    torch.save(checkpoint, edited)
    protocol = ["metrics=[mode_coverage]", "num_samples=200"]
    with caplog.at_level("INFO", logger="gan"):
        report = evaluate(make_cfg([f"ckpt_path={tmp_path / 'new'}", f"compare_with={tmp_path / 'baseline'}", *protocol],
                                   config_name="evaluate", output_dir=tmp_path / "eval"))
    said = [r.getMessage() for r in caplog.records]
    ours = describe_code(json.loads((tmp_path / "new" / "0" / "provenance.json").read_text())[0])
    if head_of(PROJECT_ROOT) is None:  # no commit here: nothing known to differ
        assert not [line for line in said if "different code" in line]
        return
    warned, = [line for line in said if "different code" in line]
    assert warned == (f"the checkpoints' runs were trained by different code ({edited}: commit 000000000000; "
                      f"{tmp_path / 'new' / '0' / 'checkpoints' / 'last.ckpt'}: {ours}); the summary pools them as repeats "
                      "of one experiment")
    compared, = [line for line in said if "trained by: ckpt_path" in line]
    assert compared.endswith(f"trained by: ckpt_path [{ours} (1 checkpoint); commit 000000000000 (1 checkpoint)]; "
                             f"compare_with {ours} (2 checkpoints)")  # one process, one machine: no other libraries
    assert [run["checkpoint"]["provenance"][0]["code"]["framework"]["commit"] for run in report["runs"]] == \
        [head_of(PROJECT_ROOT), "0" * 40]


def test_a_dirty_checkouts_diff_lands_in_the_run_folder_and_a_resume_elsewhere_brings_the_earlier_ones(
        make_cfg, tmp_path, monkeypatch, caplog):
    """End to end with the framework's checkout taken to have uncommitted changes (a clean clone has none)."""
    from gan.utils import provenance
    from gan.utils.provenance import Checkout

    diff = b"diff --git a/gan/x.py b/gan/x.py\n+changed \xe9\n"
    dirty = Checkout({"root": str(PROJECT_ROOT), "commit": "a" * 40, "dirty": True,
                      "diff_sha256": hashlib.sha256(diff).hexdigest(), "untracked_files": 0, "untracked": []}, diff)
    monkeypatch.setattr(provenance, "_framework_at_start", lambda: dirty)
    train(make_cfg(RUN, output_dir=tmp_path / "first"))
    (start,) = json.loads((tmp_path / "first" / "provenance.json").read_text())
    assert start["code"]["framework"]["diff_file"] == "code_diffs/gstep_0000000_framework.diff"
    assert (tmp_path / "first" / "code_diffs" / "gstep_0000000_framework.diff").read_bytes() == diff
    longer = [o for o in RUN if not o.startswith("generator_steps=")] + [
        "generator_steps=3", f"ckpt_path={tmp_path / 'first' / 'checkpoints' / 'last.ckpt'}"]
    with caplog.at_level("WARNING", logger="gan"):
        train(make_cfg(longer, output_dir=tmp_path / "second"))
    history = json.loads((tmp_path / "second" / "provenance.json").read_text())
    names = [start["code"]["framework"]["diff_file"] for start in history]
    assert names == ["code_diffs/gstep_0000000_framework.diff", "code_diffs/gstep_0000002_framework.diff"]
    assert all((tmp_path / "second" / name).read_bytes() == diff for name in names)  # the first copied over
    assert not [r for r in caplog.records if "other code" in r.getMessage()]  # the same code, resumed


def test_the_machines_of_a_distributed_run_are_grouped_by_machine_with_their_ranks():
    from gan.callbacks.machines import machines_of_ranks

    a = {"host": "node-a", "cpu": "EPYC", "cpu_count": 64, "gpus": ["H100", "H100"]}
    b = {"host": "node-b", "cpu": "EPYC", "cpu_count": 64, "gpus": ["A100", "A100"]}
    assert machines_of_ranks([a, a, b, b]) == [{"ranks": [0, 1], **a}, {"ranks": [2, 3], **b}]
    assert machines_of_ranks([b, a, b]) == [{"ranks": [0, 2], **b}, {"ranks": [1], **a}]  # by first rank
    # one host, another GPU list (a rank that saw other devices): two entries, not one
    assert machines_of_ranks([a, {**a, "gpus": ["H100"]}]) == [{"ranks": [0], **a}, {"ranks": [1], **a, "gpus": ["H100"]}]
    assert machines_of_ranks([a]) == [{"ranks": [0], **a}]
