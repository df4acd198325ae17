"""model.iterations_per_batch: several GAN iterations per Lightning batch train exactly what one per batch trains."""
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


def test_resume_with_several_iterations_per_batch_equals_the_uninterrupted_run(make_cfg, tmp_path):
    # wgan_gp: a batch of 2 iterations is 12 optimizer steps, so checkpoints every 12 fall between batches
    run_overrides = tiny_overrides("wgan_gp", "digits", steps=6) + ["model.iterations_per_batch=2"] + every_checkpoint(12)
    _, full = train(make_cfg(run_overrides, output_dir=tmp_path / "full"))
    middle = tmp_path / "full" / "checkpoints" / "step0000024.ckpt"
    saved = load_checkpoint(middle)
    assert saved["gan_counters"] == {"generator_steps": 4, "discriminator_steps": 20} and saved["iterations_per_batch"] == 2
    _, resumed = train(make_cfg(run_overrides + [f"ckpt_path={middle}"], output_dir=tmp_path / "resumed"))
    assert resumed["trainer"].global_step == full["trainer"].global_step
    assert_same_state(full["module"], resumed["module"])

    # another setting would read the data stream at other positions: refused, naming the saved value
    other = [o for o in run_overrides if not o.startswith("model.iterations_per_batch")] + ["model.iterations_per_batch=1"]
    with pytest.raises(ConfigError, match=r"model.iterations_per_batch=1, but the checkpoint was trained with 2"):
        train(make_cfg(other + [f"ckpt_path={middle}"], output_dir=tmp_path / "other"))


def test_a_checkpoint_cadence_inside_a_batch_is_refused_before_training(make_cfg, tmp_path):
    # every 12 optimizer steps = 2 wgan_gp iterations, inside a batch of 3 (18 steps): Lightning would never save
    cfg = make_cfg(tiny_overrides("wgan_gp", "digits", steps=6) + ["model.iterations_per_batch=3"] + every_checkpoint(12))
    with pytest.raises(ConfigError, match=r"a checkpoint every 2 iterations \(GANModelCheckpoint\) falls inside a training batch of model.iterations_per_batch=3 iterations"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists() or not list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))


def test_iterations_per_batch_must_be_positive(make_cfg):
    with pytest.raises(ConfigError, match="model.iterations_per_batch must be a positive integer, got 0"):
        train(make_cfg(tiny_overrides("dcgan", steps=2) + ["model.iterations_per_batch=0"]))
