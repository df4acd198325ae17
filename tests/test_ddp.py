"""DDP on CPU (gloo, 2 processes) through the real entry point: ``python train.py trainer=ddp_cpu``.

Two ranks with batch B must end with the same parameters as each other and as one process on the global
batch 2B. That holds only if both runs see the same (real sample, latent code, interpolation weight)
triples, so the test swaps in two test doubles (by ``_target_``) that draw the GLOBAL batch's latent codes
and penalty weights from their own stream and keep this rank's interleaved share -- the share the data
sampler gives each rank (gan/data/sampler.py). Networks without batch-coupled layers (the WGAN-GP critic's
layer norm, no BatchNorm in G): per-rank BatchNorm statistics differ from the global batch's by design.
"""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
import torch.distributed as dist

from gan.callbacks.resume import ResumeState
from gan.losses.penalties import GradientPenalty, gradient_norm_penalty
from gan.nets import DCGANGenerator
from gan.utils.config import PROJECT_ROOT
from tests.conftest import tiny_overrides
from tests.data.fake_datasets import LABELLED_PAST_THEIR_CLASSES
from train import train


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class GlobalBatchNoiseGenerator(DCGANGenerator):
    def __init__(self, *args, stream_seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream = torch.Generator().manual_seed(stream_seed)

    def noise(self, n, generator=None, device=None):
        rank, world = rank_and_world()
        return torch.randn(n * world, self.latent_dim, generator=self.stream)[rank::world]


class GlobalBatchGradientPenalty(GradientPenalty):
    def __init__(self, *args, stream_seed: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream = torch.Generator().manual_seed(stream_seed)

    def forward(self, critic, real, fake, real_logits=None, fake_logits=None):
        rank, world = rank_and_world()
        alpha = torch.rand(real.size(0) * world, generator=self.stream)[rank::world].view(-1, *[1] * (real.dim() - 1))
        penalty = gradient_norm_penalty(critic, alpha * real.detach() + (1 - alpha) * fake.detach(), self.center)
        return {"gp": penalty, "loss": self.weight * self.interval * penalty}


def logged_terms(trainer) -> dict[str, float]:
    """The losses and scores the run logged last (Lightning's record of them)."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("train/d/", "train/g/"))}


def own_terms(pl_module) -> dict[str, float]:
    """This rank's own newest terms, computed on its share of the batch."""
    return {k: float(v) for k, v in pl_module.last_terms.items() if k.startswith(("train/d/", "train/g/"))}


class SaveParameters(pl.Callback):
    def __init__(self, dirpath: str):
        self.dirpath = dirpath

    @staticmethod
    def state(pl_module):
        return {key: value.detach().clone() for key, value in pl_module.state_dict().items()}

    def on_train_start(self, trainer, pl_module):
        self.initial = self.state(pl_module)

    def on_train_end(self, trainer, pl_module):
        os.makedirs(self.dirpath, exist_ok=True)
        torch.save({"initial": self.initial, "state": self.state(pl_module),
                    "counters": (pl_module.generator_steps, pl_module.discriminator_steps),
                    "logged": logged_terms(trainer), "own": own_terms(pl_module)},
                   os.path.join(self.dirpath, f"rank{trainer.global_rank}.pt"))


def overrides(params_dir, batch_size: int) -> list[str]:
    return [o for o in tiny_overrides("wgan_gp", steps=3) if not o.startswith("callbacks.")] + [
        f"data.batch_size={batch_size}", "model.generator.norm=none",
        "model.generator._target_=tests.test_ddp.GlobalBatchNoiseGenerator",
        "model.penalties.gradient_penalty._target_=tests.test_ddp.GlobalBatchGradientPenalty",
        "callbacks=none", "metrics=none", "+callbacks.save._target_=tests.test_ddp.SaveParameters",
        f"+callbacks.save.dirpath={params_dir}",
    ]


@pytest.mark.slow
# 3: the whole run (3 iterations) in one training batch; held: each rank holds the whole set where it trains
# (data.on_device, the CPU here) and gathers its share from the indices of its shard
@pytest.mark.parametrize("iterations_per_batch, held", [(1, False), (3, False), (3, True)], ids=["1", "3", "3-held"])
def test_two_ranks_with_gradient_penalty_equal_one_process_on_the_global_batch(make_cfg, tmp_path, iterations_per_batch, held):
    batching = [f"model.iterations_per_batch={iterations_per_batch}", "trainer.log_every_n_steps=3",
                f"data.on_device={str(held).lower()}"]
    command = [sys.executable, "train.py", "trainer=ddp_cpu", *overrides(tmp_path / "ddp", batch_size=4), *batching,
               f"hydra.run.dir={tmp_path / 'run_ddp'}", f"paths.data_dir={tmp_path / 'data'}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    _, single = train(make_cfg(overrides(tmp_path / "single", batch_size=8) + batching))

    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    reference = single["module"].state_dict()
    assert ranks[0]["counters"] == ranks[1]["counters"] == (3, 15)
    for key, value in reference.items():
        assert torch.equal(ranks[0]["state"][key], ranks[1]["state"][key]), f"{key} differs between ranks"
        torch.testing.assert_close(ranks[0]["state"][key], value, rtol=1e-4, atol=1e-6, msg=lambda m: f"{key}: {m}")
    initial = ranks[0]["initial"]
    for network in ("generator.", "discriminator."):  # the runs trained: equal, not merely untouched
        assert any(not torch.equal(initial[k], reference[k]) for k in reference if k.startswith(network))

    # the logged losses and scores are the ranks' mean: the same on both ranks, the global batch's value (every term
    # is a per-sample mean over equal shares), not rank 0's own estimate
    logged, expected = ranks[0]["logged"], logged_terms(single["trainer"])
    assert logged.keys() == expected.keys() and "train/d/loss" in logged and "train/g/loss" in logged
    assert ranks[1]["logged"] == logged
    for key, value in expected.items():
        assert logged[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        assert logged[key] == pytest.approx((ranks[0]["own"][key] + ranks[1]["own"][key]) / 2, rel=1e-6, abs=1e-7), key
    assert any(ranks[0]["own"][k] != pytest.approx(logged[k], rel=1e-3) for k in logged)  # the ranks' own values differ


def test_each_rank_draws_its_own_random_numbers():
    callback = ResumeState()
    draws = []
    for rank in (0, 1):
        callback.setup(SimpleNamespace(world_size=2, global_rank=rank), None, "fit")
        draws.append(torch.randn(4))
    assert not torch.equal(draws[0], draws[1])
    callback.setup(SimpleNamespace(world_size=2, global_rank=1), None, "fit")
    assert torch.equal(torch.randn(4), draws[1])


@pytest.mark.slow
def test_a_configuration_error_met_inside_fit_is_said_once_by_a_ddp_run(tmp_path):
    """Every rank meets the same configuration error (here, a logging cadence inside a training batch, checked when
    fit sets the batches up), and each printed it (an audit)."""
    command = [sys.executable, "train.py", "trainer=ddp_cpu", "model=dcgan", "data=digits", "data.batch_size=8",
               "model.generator.width=4", "model.discriminator.width=4", "generator_steps=20", "logger=none",
               "metrics.every_n_generator_steps=10", "model.iterations_per_batch=3",
               f"hydra.run.dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: trainer.log_every_n_steps=50 falls inside a training batch"), errors


@pytest.mark.slow
def test_a_data_error_met_by_both_ranks_inside_the_training_loop_ends_the_run_with_status_2(tmp_path):
    """An error raised inside fit's training loop on every rank at once (labels past the declared classes, found at the
    first batch): each rank says it in one line (data errors may be one rank's own, so every rank prints its own),
    neither leaves a traceback, and the run ends instead of one rank waiting for the other in a collective."""
    command = [sys.executable, "train.py", "trainer=ddp_cpu", "model=cgan", "data=digits", "data.batch_size=8",
               f"data._target_={LABELLED_PAST_THEIR_CLASSES}", "model.generator.width=4",
               "model.discriminator.width=4", "generator_steps=20", "logger=none",
               f"hydra.run.dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"})
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and 1 <= len(lines) <= 2, lines
    assert all(line.startswith("error: data digits yields labels in [1") and "expected class indices in [0, 10)" in line
               for line in lines), lines
    assert not list((tmp_path / "run").glob("checkpoints/*.ckpt"))  # no step was taken, so none was saved


@pytest.mark.slow
def test_a_ddp_resume_on_the_cpu_is_not_warned_of_a_thread_count_it_keeps(tmp_path):
    """The thread-count warning compared the checkpoint's count (each DDP process's, which Lightning's launch sets to
    cores / processes) with the launching process's count before the launch, so every CPU DDP resume was told it
    would not be bit-identical while it was (an audit). Without OMP_NUM_THREADS, as a user runs it."""
    run = [sys.executable, "train.py", "trainer=ddp_cpu", "model=dcgan", "data=toy2d_ring", "presets=none",
           "model.generator.width=4", "model.discriminator.width=4", "logger=none", "metrics=none",
           f"hydra.run.dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}",
           "callbacks.model_checkpoint.every_n_train_steps=2"]  # every generator step: last.ckpt named twice by 2 ranks
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env["WANDB_MODE"] = "offline"
    first = subprocess.run(run + ["generator_steps=2"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["cpu_threads"]
    resumed = subprocess.run(run + ["generator_steps=4", "ckpt_path=last"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = [line for line in (resumed.stdout + resumed.stderr).splitlines() if "CPU threads" in line]
    assert said == [], (saved, said)
    # rank 0 records the run's starts (the other rank writes nothing, says nothing), and the resume is on the same code
    history = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert [start["from_generator_step"] for start in history] == [0, 2]
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["provenance"] == history
    # every rank's machine, gathered once the process group exists: here both ranks on this one
    assert [start["machines"] for start in history] == [[{"ranks": [0, 1], **start["hardware"]}] for start in history]
    output = resumed.stdout + resumed.stderr
    assert output.count("] - Code: ") == 1 and "other code" not in output
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "last.ckpt").samefile(checkpoints / "gstep_0000004.ckpt")  # a second name, rank 0's
