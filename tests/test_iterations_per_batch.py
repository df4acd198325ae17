"""model.iterations_per_batch: several GAN iterations per Lightning batch train exactly what one per batch trains."""
import csv
import io

import lightning.pytorch as pl
import pytest

from gan.utils.checkpoint import load_checkpoint
from gan.utils.errors import ConfigError
from tests.conftest import tiny_overrides
from tests.test_resume import assert_same_state, every_checkpoint
from train import train


class IterationRecorder(pl.Callback):
    """The generator step at every iteration end (the module's hook) and at every batch end (Lightning's)."""

    def __init__(self):
        self.iterations, self.batches, self.d_losses, self.g_grad_norms = [], [], [], []

    def on_gan_iteration_end(self, trainer, pl_module):
        self.iterations.append(pl_module.generator_steps)
        self.d_losses.append(float(pl_module.last_terms["train/d/loss"]))
        grad_norm = next(c for c in trainer.callbacks if type(c).__name__ == "GradNorm")  # it observes before this one
        self.g_grad_norms.append(grad_norm.last_logged.get("grad/g/norm"))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches.append(pl_module.generator_steps)


def run(make_cfg, tmp_path, name, model, data, steps, iterations, extra=()):
    recorder = IterationRecorder()
    cfg = make_cfg(tiny_overrides(model, data, steps=steps) + ["metrics=none", f"model.iterations_per_batch={iterations}",
                                                                "callbacks.grad_norm.every_n_generator_steps=1", *extra],
                   output_dir=tmp_path / name)
    _, objects = train(cfg, callbacks=[recorder])
    return objects, recorder


@pytest.mark.parametrize("model, data, extra", [
    ("wgan_gp", "digits", ["model.ema_decay=0.9"]),  # 5 critic steps with a penalty, EMA
    ("gan", "toy2d_ring", ["data.num_samples=80"]),  # dropout draws from the RNG; 80 points: the data wraps around
    ("cgan", "digits", []),  # labels split with the samples
    ("r3gan", "toy2d_ring", []),  # a fresh real batch for the generator step: two real batches per iteration
])
def test_several_iterations_per_batch_train_the_same_weights_as_one(make_cfg, tmp_path, model, data, extra):
    steps = 10 if model == "gan" else 4
    one, one_recorded = run(make_cfg, tmp_path, "one", model, data, steps, 1, extra)
    two, two_recorded = run(make_cfg, tmp_path, "two", model, data, steps, 2, extra)
    assert_same_state(one["module"], two["module"])  # the same data stream, updates and random draws
    assert one["trainer"].global_step == two["trainer"].global_step
    # the observers saw every iteration, with the same values; Lightning's batch hooks saw every second
    assert one_recorded.iterations == two_recorded.iterations == list(range(1, steps + 1))
    assert one_recorded.d_losses == two_recorded.d_losses
    # the gradient norms are logged at every iteration (every_n_generator_steps=1), not once per batch
    assert None not in two_recorded.g_grad_norms and one_recorded.g_grad_norms == two_recorded.g_grad_norms
    assert one_recorded.batches == list(range(1, steps + 1)) and two_recorded.batches == list(range(2, steps + 1, 2))


def test_a_run_ends_inside_a_batch_at_max_steps(make_cfg, tmp_path):
    objects, recorded = run(make_cfg, tmp_path, "run", "wgan_gp", "digits", 7, 5)
    module, trainer = objects["module"], objects["trainer"]
    assert (module.generator_steps, module.discriminator_steps, trainer.global_step) == (7, 35, 42)
    assert recorded.iterations == list(range(1, 8)) and recorded.batches == [5, 7]


def test_resume_with_another_number_of_iterations_per_batch_equals_the_uninterrupted_run(make_cfg, tmp_path):
    # wgan_gp: a batch of 2 iterations is 12 optimizer steps, so checkpoints every 12 fall between batches
    base = tiny_overrides("wgan_gp", "digits", steps=6) + every_checkpoint(12)
    _, full = train(make_cfg(base + ["model.iterations_per_batch=2"], output_dir=tmp_path / "full"))
    middle = tmp_path / "full" / "checkpoints" / "gstep_0000004.ckpt"
    assert load_checkpoint(middle)["gan_counters"] == {"generator_steps": 4, "discriminator_steps": 20}
    # the data stream continues after the real batches the saved iterations read, whatever either run's batches held
    for iterations in ("1", "2", "auto"):
        _, resumed = train(make_cfg(base + [f"model.iterations_per_batch={iterations}", f"ckpt_path={middle}"],
                                    output_dir=tmp_path / f"resumed_{iterations}"))
        assert resumed["trainer"].global_step == full["trainer"].global_step
        assert_same_state(full["module"], resumed["module"])


def test_a_run_that_ended_inside_a_batch_continues_where_it_ended(make_cfg, tmp_path):
    # 7 iterations in batches of 5: the second batch's last 3 iterations' reals were loaded, not trained on
    first = tiny_overrides("dcgan", "toy2d_ring", steps=7) + ["metrics=none", "model.iterations_per_batch=5"]
    train(make_cfg(first, output_dir=tmp_path / "first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    longer = [o.replace("generator_steps=7", "generator_steps=12") for o in first]
    _, resumed = train(make_cfg(longer + [f"ckpt_path={last}"], output_dir=tmp_path / "resumed"))
    _, full = train(make_cfg(longer, output_dir=tmp_path / "full"))
    assert resumed["module"].generator_steps == full["module"].generator_steps == 12
    assert_same_state(full["module"], resumed["module"])


@pytest.mark.parametrize("first_k, resumed_k", [(5, 5), (2, 5), (5, 2)])
def test_a_run_resumed_inside_a_batch_keeps_its_cadences(make_cfg, tmp_path, first_k, resumed_k):
    """Resumed at its 7th iteration in batches of 5, a run restarted its batches there (8-12, 13-17, 18-20), so
    nothing keyed on batch ends acted again where it should: no loss row, no interval checkpoint at 10, the grid of 10
    drawn at 12 (an audit: no loss rows and no interval checkpoints for the rest of a signalled run). The resumed run
    now starts at the batch the 7th iteration was in, skipping what was trained, whatever K the first run had."""
    cadences = ["logger=csv", "trainer.log_every_n_steps=10", "callbacks.sample_grid.every_n_generator_steps=10",
                *every_checkpoint(20)]  # 20 optimizer steps: 10 dcgan iterations
    base = [o for o in tiny_overrides("dcgan", "toy2d_ring", steps=7) if o != "logger=none"] + cadences
    train(make_cfg(base + [f"model.iterations_per_batch={first_k}"], output_dir=tmp_path / "resumed"))
    longer = [o.replace("generator_steps=7", "generator_steps=20") for o in base] + [f"model.iterations_per_batch={resumed_k}"]
    _, resumed = train(make_cfg(longer + ["ckpt_path=last"], output_dir=tmp_path / "resumed"))
    _, full = train(make_cfg(longer, output_dir=tmp_path / "full"))
    assert_same_state(full["module"], resumed["module"])

    def after_the_resume(run):
        rows = csv.DictReader(io.StringIO((tmp_path / run / "csv" / "metrics.csv").read_text()))
        logged = {float(r["train/generator_step"]): {k: v for k, v in r.items() if k.startswith("train/") or k == "step"}
                  for r in rows if r.get("train/generator_step") and float(r["train/generator_step"]) > 7}
        grids = sorted(p.name for p in (tmp_path / run / "samples").glob("gstep_*.png") if int(p.stem[6:]) > 7)
        checkpoints = sorted(p.name for p in (tmp_path / run / "checkpoints").glob("gstep_*.ckpt"))
        return logged, grids, checkpoints

    logged, grids, checkpoints = after_the_resume("full")
    assert sorted(logged) == [10.0, 20.0] and grids == ["gstep_0000010.png", "gstep_0000020.png"]
    assert checkpoints == ["gstep_0000010.ckpt", "gstep_0000020.ckpt"]
    # the same rows (values and Lightning's step included), grids and files
    assert after_the_resume("resumed") == (logged, grids, checkpoints)


def test_a_checkpoint_cadence_inside_a_batch_is_refused_before_training(make_cfg, tmp_path):
    # every 12 optimizer steps = 2 wgan_gp iterations, inside a batch of 3 (18 steps): Lightning would never save
    cfg = make_cfg(tiny_overrides("wgan_gp", "digits", steps=6) + ["model.iterations_per_batch=3", "trainer.log_every_n_steps=3"]
                   + every_checkpoint(12))
    with pytest.raises(ConfigError, match=r"a checkpoint every 2 iterations \(GANModelCheckpoint\) falls inside a training batch of model.iterations_per_batch=3 iterations"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists() or not list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))


def test_a_logging_cadence_inside_a_batch_is_refused(make_cfg):
    cfg = make_cfg(tiny_overrides("dcgan", steps=6) + ["model.iterations_per_batch=4", "trainer.log_every_n_steps=6"])
    with pytest.raises(ConfigError, match=r"trainer.log_every_n_steps=6 falls inside a training batch of model.iterations_per_batch=4"):
        train(cfg)


@pytest.mark.parametrize("value", [0, -1, "many"])
def test_iterations_per_batch_must_be_positive_or_auto(make_cfg, value):
    with pytest.raises(ConfigError, match=f"model.iterations_per_batch must be a positive integer or auto, got {value!r}"):
        train(make_cfg(tiny_overrides("dcgan", steps=2) + [f"model.iterations_per_batch={value}"]))


# ------------------------------------------------------------------------------------------------ auto
def cadences_allow(every_and_unit: list[tuple[int, int]], k: int) -> bool:
    return all(every % (k * unit) == 0 for every, unit in every_and_unit)


@pytest.mark.parametrize("log_every, grid_every, checkpoint_iterations, expected", [
    (50, 250, 500, 10),  # the shipped cadences
    (50, 250, 333, 1),  # a checkpoint every 333 iterations: only batches of one keep it
    (1, 250, 500, 1),  # debug=fast logs every iteration
    (12, 8, 24, 4),
    (30, 15, 45, 5),
])
def test_auto_takes_the_most_iterations_every_batch_end_cadence_allows(make_cfg, tmp_path, log_every, grid_every,
                                                                     checkpoint_iterations, expected):
    overrides = tiny_overrides("wgan_gp", "toy2d_ring", steps=1) + [
        f"trainer.log_every_n_steps={log_every}", f"callbacks.sample_grid.every_n_generator_steps={grid_every}",
        f"callbacks.model_checkpoint.every_n_train_steps={checkpoint_iterations * 6}", "metrics=none"]
    _, objects = train(make_cfg(overrides, output_dir=tmp_path))
    chosen = objects["module"].iterations_per_batch
    assert chosen == expected
    # the invariant behind it: every cadence falls on batch ends at the chosen number, at no larger one up to 10
    cadences = [(log_every, 1), (grid_every, 1), (checkpoint_iterations, 1)]
    assert cadences_allow(cadences, chosen) and not any(cadences_allow(cadences, k) for k in range(chosen + 1, 11))


def test_auto_keeps_a_batch_s_real_samples_under_its_memory_budget(make_cfg, tmp_path, monkeypatch):
    from gan import batching

    # wgan_gp on the digits: 5 real batches of 8 samples of 1x28x28 float32 per iteration
    per_iteration = 5 * 8 * 28 * 28 * 4
    monkeypatch.setattr(batching, "AUTO_MOST_BYTES", 5 * per_iteration + 1)  # 5 fit, 10 would not (half the bytes would)
    overrides = tiny_overrides("wgan_gp", "digits", steps=1) + ["trainer.log_every_n_steps=10",
                                                                "callbacks.sample_grid.every_n_generator_steps=10", "metrics=none"]
    _, objects = train(make_cfg(overrides, output_dir=tmp_path))
    assert objects["module"].iterations_per_batch == 5  # 10 would fit the cadences, not the budget


def test_auto_leaves_a_loader_the_framework_did_not_build_at_one_real_batch(make_cfg):
    from types import SimpleNamespace

    from gan.batching import resolve_iterations_per_batch

    module = SimpleNamespace(n_critic=1, n_generator=1, real_batches_per_iteration=1)
    trainer = SimpleNamespace(log_every_n_steps=50, callbacks=[], datamodule=None)
    assert resolve_iterations_per_batch("auto", trainer, module) == 1
    trainer.datamodule = SimpleNamespace(batches_per_training_step=1, batch_size=8, sample_shape=(2,))
    assert resolve_iterations_per_batch("auto", trainer, module) == 10


def test_auto_logs_the_same_rows_at_the_same_steps_as_one_iteration_per_batch(make_cfg, tmp_path):
    """Lightning's logging counter counts iterations: the CSV log (values, steps, cadence) is the same file."""
    overrides = tiny_overrides("dcgan", "toy2d_ring", steps=20) + ["logger=csv", "trainer.log_every_n_steps=5",
                                                                   "callbacks.sample_grid.every_n_generator_steps=10",
                                                                   "callbacks.grad_norm.every_n_generator_steps=5"]
    logs = {}
    for iterations in ("1", "auto"):
        _, objects = train(make_cfg(overrides + [f"model.iterations_per_batch={iterations}"], output_dir=tmp_path / iterations))
        logs[iterations] = next((tmp_path / iterations).rglob("metrics.csv")).read_text()
        if iterations == "auto":
            assert objects["module"].iterations_per_batch == 5
    rows = list(csv.DictReader(io.StringIO(logs["1"])))
    assert {row["step"] for row in rows if row.get("train/g/loss")} == {"4", "9", "14", "19"}  # every 5th iteration
    assert logs["auto"] == logs["1"]


def test_a_signal_saves_after_the_iteration_it_arrived_in_not_at_the_batch_end(make_cfg, tmp_path):
    """SIGTERM in generator step 7 of batches of 5: last.ckpt holds step 7 (the batch ends there), not 10."""
    import signal

    from gan.callbacks import GANModelCheckpoint

    class SignalAtStep7(pl.Callback):
        def on_gan_iteration_end(self, trainer, pl_module):
            if pl_module.generator_steps == 7:
                saver = next(c for c in trainer.callbacks if isinstance(c, GANModelCheckpoint) and c.save_last)
                saver._on_signal(signal.SIGTERM, None)  # what the installed handler does when the signal arrives

    overrides = tiny_overrides("dcgan", "toy2d_ring", steps=20) + ["metrics=none", "model.iterations_per_batch=5"]
    with pytest.raises(SystemExit) as exited:
        train(make_cfg(overrides, output_dir=tmp_path), callbacks=[SignalAtStep7()])
    assert exited.value.code == 128 + signal.SIGTERM
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["gan_counters"]["generator_steps"] == 7


@pytest.mark.parametrize("setting", ["auto", 1, 2])
def test_a_checkpoint_interval_inside_an_iteration_is_refused_whatever_the_batches(tmp_path, setting):
    """Lightning tests ``global_step % every`` at batch ends, and its step advances by n_critic + n_generator per
    iteration: every 3 steps of a DCGAN saved every 6, and auto fell back to one iteration per batch without a word."""
    from types import SimpleNamespace

    from gan.batching import resolve_iterations_per_batch
    from gan.callbacks import GANModelCheckpoint
    from gan.utils.instantiate import with_config_key_attribute

    module = SimpleNamespace(n_critic=1, n_generator=1, real_batches_per_iteration=1)
    checkpoint = with_config_key_attribute(GANModelCheckpoint(dirpath=str(tmp_path), every_n_train_steps=3), "callbacks.model_checkpoint")
    datamodule = SimpleNamespace(batches_per_training_step=1, batch_size=8, sample_shape=(2,))
    trainer = SimpleNamespace(log_every_n_steps=50, callbacks=[checkpoint], datamodule=datamodule)
    with pytest.raises(ConfigError, match=r"^callbacks.model_checkpoint.every_n_train_steps=3: Lightning's step advances by 2 per "
                                          r"GAN iteration \(n_critic=1 \+ n_generator=1\), so it would save only every 6 steps; "
                                          r"expected a multiple of 2 \(e.g. 2 or 4\)$"):
        resolve_iterations_per_batch(setting, trainer, module)
    checkpoint._every_n_train_steps = 0  # no interval: nothing to check
    resolve_iterations_per_batch(setting, trainer, module)
    trainer.callbacks = [GANModelCheckpoint(dirpath=str(tmp_path), every_n_train_steps=5)]  # built by hand: its class names it
    with pytest.raises(ConfigError, match=r"^GANModelCheckpoint.every_n_train_steps=5: "):
        resolve_iterations_per_batch(setting, trainer, module)
