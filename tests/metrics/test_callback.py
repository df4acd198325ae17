"""The metrics callback in a real (tiny) training run: interval in generator steps, EMA generator in eval
mode, val/<metric> logged, best.ckpt beside last.ckpt, training itself unchanged."""
from __future__ import annotations

import json

import pytest
import torch

from gan.metrics import MetricsUnavailableError
from gan.metrics.cache import data_identity
from gan.utils.checkpoint import load_checkpoint
from tests.conftest import tiny_overrides
from train import train

FAST = ["metrics.every_n_generator_steps=2", "metrics.num_samples=64", "metrics.num_real=256"]


def metrics_callback(trainer):
    from gan.callbacks import MetricsCallback

    return next(c for c in trainer.callbacks if isinstance(c, MetricsCallback))


@pytest.mark.slow
def test_scores_ema_generator_every_n_generator_steps_and_keeps_best(make_cfg, tmp_path):
    # n_critic=2: Lightning's global step runs 3x faster than the generator step the interval is counted in
    cfg = make_cfg(tiny_overrides("dcgan", steps=6) + FAST + ["model.ema_decay=0.5", "model.n_critic=2", "logger=csv",
                                                               "trainer.log_every_n_steps=1"])
    metrics, objects = train(cfg)
    module, trainer = objects["module"], objects["trainer"]
    history = metrics_callback(trainer).history
    assert [(r["generator_step"], r["global_step"]) for r in history] == [(2, 6), (4, 12), (6, 18)]
    assert module.sampling_generator is module.generator_ema.module and module.generator_ema.module.training
    # the last value is the EMA generator's score with the suite's fixed codes
    suite = metrics_callback(trainer).suite
    rescored, _ = suite.evaluate_generator(module.sampling_generator, objects["datamodule"], data_identity(module.run_config["data"]))
    assert rescored["fid_digits"] == pytest.approx(history[-1]["values"]["fid_digits"], rel=1e-6)
    assert metrics["val/fid_digits"] == pytest.approx(history[-1]["values"]["fid_digits"], rel=1e-6)

    out = tmp_path / "run"
    lines = [json.loads(line) for line in (out / "metrics" / "metrics.jsonl").read_text().splitlines()]
    assert [line["values"] for line in lines] == [r["values"] for r in history]
    assert lines[0]["protocol"]["metrics"]["fid_digits"]["num_fake"] == 64
    header = (out / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val/fid_digits" in header

    best_step = min(history, key=lambda r: r["values"]["fid_digits"])["generator_step"]
    best = load_checkpoint(out / "checkpoints" / "best.ckpt")
    assert best["gan_counters"]["generator_steps"] == best_step
    assert (out / "checkpoints" / "last.ckpt").exists()


def test_callback_does_not_change_training(make_cfg, tmp_path):
    weights = []
    for name, extra in (("scored", FAST), ("unscored", ["metrics=none"])):
        _, objects = train(make_cfg(tiny_overrides("dcgan", steps=4) + extra, output_dir=tmp_path / name))
        weights.append({k: v.clone() for k, v in objects["module"].state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert (tmp_path / "scored" / "checkpoints" / "best.ckpt").exists()
    assert not (tmp_path / "unscored" / "checkpoints" / "best.ckpt").exists()  # metrics=none: no best


def test_missing_inception_weights_stop_training_before_it_starts(make_cfg, tmp_path, monkeypatch):
    from gan.metrics import features

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_hub"))
    monkeypatch.setattr(features, "can_reach", lambda *a, **k: False)
    with pytest.raises(MetricsUnavailableError, match="metrics.inception_weights"):
        train(make_cfg(tiny_overrides("dcgan") + ["metrics=[fid]"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_metric_that_does_not_fit_the_data_fails_before_training(make_cfg, tmp_path):
    with pytest.raises(ValueError, match="mode_coverage needs a 2D Gaussian mixture"):
        train(make_cfg(tiny_overrides("dcgan") + ["metrics=[mode_coverage]"]))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_scores_reach_the_loggers_at_the_step_they_were_scored_and_only_there(make_cfg, tmp_path):
    """Scored every 3 generator steps and logged every 5: through self.log a score waited for the next logging
    step (step 3's at 5, step 6's never) and was written again at every logging step after it (an audit)."""
    import csv

    cfg = make_cfg(tiny_overrides("dcgan", steps=10) + FAST + ["metrics.every_n_generator_steps=3", "logger=csv",
                                                                "trainer.log_every_n_steps=5"])
    metrics, objects = train(cfg)
    history = metrics_callback(objects["trainer"]).history
    with open(tmp_path / "run" / "csv" / "metrics.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/fid_digits")]
    assert [(float(row["train/generator_step"]), float(row["val/fid_digits"])) for row in rows] == \
        [(float(r["generator_step"]), pytest.approx(r["values"]["fid_digits"])) for r in history]
    assert [r["generator_step"] for r in history] == [3, 6, 9]
    # best.ckpt's monitor and train()'s returned metrics still read the newest score
    assert metrics["val/fid_digits"] == pytest.approx(history[-1]["values"]["fid_digits"])
    best_step = min(history, key=lambda r: r["values"]["fid_digits"])["generator_step"]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt")["gan_counters"]["generator_steps"] == best_step


def test_resume_at_an_interval_boundary_writes_the_rows_of_the_uninterrupted_run(make_cfg, tmp_path):
    """The schedule (step last scored) and history are in the checkpoint: resumed from generator step 2 of an
    every-2-steps schedule, the run scores at step 4 only, with the values the uninterrupted run wrote."""
    every_two = ["callbacks.model_checkpoint.every_n_train_steps='${optimizer_steps:2,${model.n_critic},${model.n_generator}}'",
                 "callbacks.model_checkpoint.save_top_k=-1"]
    run = tiny_overrides("dcgan", steps=4) + FAST + every_two
    _, full = train(make_cfg(run, output_dir=tmp_path / "full"))
    middle = next(path for path in sorted((tmp_path / "full" / "checkpoints").glob("gstep_*.ckpt"))
                  if load_checkpoint(path)["gan_counters"]["generator_steps"] == 2)
    _, resumed = train(make_cfg(run + [f"ckpt_path={middle}"], output_dir=tmp_path / "resumed"))

    def rows(name):
        return [json.loads(line) for line in (tmp_path / name / "metrics" / "metrics.jsonl").read_text().splitlines()]

    assert [row["generator_step"] for row in rows("full")] == [2, 4]
    assert rows("resumed") == rows("full")[1:]  # same steps, global steps, values and protocol
    assert metrics_callback(resumed["trainer"]).history == metrics_callback(full["trainer"]).history
    # one protocol object for the records that share it, in memory and through a checkpoint (stored once)
    history = metrics_callback(resumed["trainer"]).history
    assert history[1]["protocol"] is history[0]["protocol"]
    saved = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")["callbacks"]
    saved_history = next(state["history"] for name, state in saved.items() if name.startswith("MetricsCallback"))
    assert saved_history == history and saved_history[1]["protocol"] is saved_history[0]["protocol"]


def test_one_switch_to_eval_mode_per_evaluation_not_one_per_batch(make_cfg, tmp_path, monkeypatch):
    """The sampling generator is put in eval mode once for all of an evaluation's batches (metrics.batch_size=16:
    four batches of 64 fakes), and is training again afterwards."""
    from gan.callbacks import MetricsCallback

    switches = []
    original_score = MetricsCallback.score

    def counting_score(self, trainer, pl_module):
        generator = pl_module.sampling_generator
        original_train = type(generator).train
        monkeypatch.setattr(generator, "train", lambda mode=True: switches.append(mode) or original_train(generator, mode))
        try:
            return original_score(self, trainer, pl_module)
        finally:
            monkeypatch.delattr(generator, "train")
            assert generator.training

    monkeypatch.setattr(MetricsCallback, "score", counting_score)
    train(make_cfg(tiny_overrides("dcgan", steps=2) + FAST + ["metrics.batch_size=16"]))
    assert switches == [False, True]  # eval() once, back to training once: one evaluation at step 2


def test_an_unscored_final_generator_is_said_with_how_to_score_it(make_cfg, tmp_path, caplog):
    """3 steps scored every 2: the last score is at step 2, and the end of the run says so once, with the
    evaluate.py command for last.ckpt; a run that ends on a scored step says nothing."""
    import logging

    with caplog.at_level(logging.INFO, logger="gan"):
        _, objects = train(make_cfg(tiny_overrides("dcgan", steps=3) + FAST, output_dir=tmp_path / "three"))
    said = [r.getMessage() for r in caplog.records if "was not scored" in r.getMessage()]
    assert [r["generator_step"] for r in metrics_callback(objects["trainer"]).history] == [2]
    assert said == ["The final generator (generator step 3) was not scored (metrics every 2 generator steps, last at "
                    f"generator step 2); score it with: python evaluate.py ckpt_path={tmp_path / 'three' / 'checkpoints' / 'last.ckpt'}"]
    assert (tmp_path / "three" / "checkpoints" / "last.ckpt").is_file()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gan"):
        train(make_cfg(tiny_overrides("dcgan", steps=2) + FAST, output_dir=tmp_path / "two"))
    assert not [r for r in caplog.records if "was not scored" in r.getMessage()]


def test_the_fit_check_before_the_feature_networks_load_runs_at_every_scoring_interval(make_cfg):
    """Scoring every generator step (interval 1) skipped the check, so an unfit metric's feature network loaded (or
    downloaded) before the refusal (a mutation audit); interval 0 scores nothing in training: nothing to refuse."""
    from gan.callbacks.metrics import MetricsCallback, check_metrics_fit
    from gan.utils.instantiate import build

    from omegaconf import OmegaConf

    cfg = make_cfg(tiny_overrides("dcgan") + ["metrics=[mode_coverage]"])
    selection = OmegaConf.to_container(cfg.metrics, resolve=True)
    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    for every in (1, 2, 250):
        with pytest.raises(ValueError, match="mode_coverage needs a 2D Gaussian mixture"):
            check_metrics_fit(selection | {"every_n_generator_steps": every}, datamodule, None)
    check_metrics_fit(selection | {"every_n_generator_steps": 0}, datamodule, None)
    # no metric selected: its interval does not constrain how many iterations a training batch holds
    assert MetricsCallback({"compute": {}, "every_n_generator_steps": 7}).batch_end_every_n_generator_steps == 0
    assert MetricsCallback(selection | {"every_n_generator_steps": 7}).batch_end_every_n_generator_steps == 7


def test_the_best_of_a_resumed_run_covers_its_whole_history_by_direction_and_skips_non_finite_scores():
    from gan.callbacks import MetricsCallback

    callback = MetricsCallback({"compute": {"mode_coverage": {"num_samples": 100}}, "every_n_generator_steps": 1})
    callback.history = [{"generator_step": step, "values": values} for step, values in [
        (1, {"mode_coverage/high_quality": 0.9, "mode_coverage/reverse_kl": float("nan")}),
        (2, {"mode_coverage/high_quality": float("nan"), "mode_coverage/reverse_kl": 0.5}),
        (3, {"mode_coverage/high_quality": 0.4, "mode_coverage/reverse_kl": 0.2}),
        (4, {"mode_coverage/high_quality": 0.6, "mode_coverage/reverse_kl": 0.3})]]
    logged = {"val/mode_coverage/high_quality": 0.6, "val/mode_coverage/reverse_kl": 0.3, "val/mode_coverage/modes": 7.0}
    # modes, logged but in no record of this history, has no best to keep (W&B's own summary keeps it)
    assert callback.best_of_the_run(logged) == {"val/mode_coverage/high_quality": {"max": 0.9, "last": 0.6},
                                                "val/mode_coverage/reverse_kl": {"min": 0.2, "last": 0.3}}


def test_the_code_behind_the_real_feature_cache_is_hashed_when_training_starts(make_cfg, monkeypatch):
    """The cache key's code hash is read once per process; asked for at setup, it is the code the run imported, not
    the checkout as edited by the time of the first score (minutes later)."""
    import gan.callbacks.metrics as callback_module
    from gan.metrics.cache import feature_code

    asked = []

    def recording(datamodule):
        asked.append((type(datamodule).__name__, callback_module.MetricsCallback.score.calls))
        return feature_code(datamodule)

    monkeypatch.setattr(callback_module, "feature_code", recording)
    score = callback_module.MetricsCallback.score

    def counted(self, trainer, pl_module):
        counted.calls += 1
        return score(self, trainer, pl_module)

    counted.calls = 0
    monkeypatch.setattr(callback_module.MetricsCallback, "score", counted)
    train(make_cfg(tiny_overrides("dcgan", steps=2) + FAST))
    assert asked == [("DigitsDataModule", 0)] and counted.calls == 1  # once, before the first score
