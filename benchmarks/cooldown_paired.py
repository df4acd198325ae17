"""A paired test of a learning-rate cool-down at the end of r3gan's grid run: one trajectory per seed, forks.

    python benchmarks/cooldown_paired.py --seed 0                       # forks at 22,000 and 26,000
    python benchmarks/cooldown_paired.py --seed 0 --forks 22000 --end 3e-5

Seeds differ by more than a late change does (the r3gan grid's 5 seeds spread over 2 points of "high
quality"), so the change is compared on the same trajectory: the run of ``reproduce.py``'s r3gan grid cell
WITHOUT the cool-down (``then`` / ``then_from`` of the lr schedule set to null) trains to the end and saves a
checkpoint at each fork; from each fork a resumed run (resume is exact) follows a cosine from the held
learning rate to ``--end`` over the remaining generator steps. Every branch is scored at the last step with the
protocol of ``reproduce.py`` (2,500 samples) and with 20,000 samples (a smaller binomial error: modes, high
quality %, reverse KL, and the median distance to the nearest mode in std), for the EMA and the raw
generator; one JSON line per branch goes to ``--out``, with the run's ``precision`` (Lightning's resolved
``trainer.precision``: the grid preset picks bf16-mixed where the CPU has native bf16) and ``threads`` (torch's
thread count it trained with, the preset's ``cpu_threads``).

The README's paired test (seeds 0-3) ran in fp32: ``python
benchmarks/cooldown_paired.py --seed <seed> -- trainer.precision=32-true``. Without the override a run takes the
preset's precision (bf16-mixed on a CPU with native bf16), which is not the setting those numbers were measured in.

The lines in benchmarks/results/r3gan_grid_cooldown_paired.jsonl ran (2026-12-03) before the grid preset held
the cool-down: the base branch then was the preset as it stood, and the 22,000 branches of seeds 2 and 3
resumed with the preset's new schedule (branch "... (preset)"); the curves are the same as here.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from omegaconf import open_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import reproduce  # noqa: E402
from gan.metrics.modes import mode_coverage  # noqa: E402
from train import train  # noqa: E402

NO_COOL_DOWN = ("model.schedules.lr.value.then=null", "model.schedules.lr.value.then_from=null")


class SaveAt(pl.Callback):
    """Saves a full checkpoint after the iteration that completes each of ``steps`` generator steps."""

    def __init__(self, steps, directory: Path):
        self.steps, self.directory = set(steps), directory

    def on_train_batch_end(self, trainer, module, *args):
        if module.generator_steps in self.steps:
            trainer.save_checkpoint(str(self.directory / f"fork{module.generator_steps}.ckpt"))


class StartStep(pl.Callback):
    """Records the generator step training starts from (the fork's, when resumed)."""

    step = None

    def on_train_start(self, trainer, module):
        self.step = module.generator_steps


def score(cfg, objects, seed: int, branch: str, seconds: float) -> dict:
    module, datamodule = objects["module"], objects["datamodule"]
    values, _ = reproduce.score_with_protocol(cfg, module, datamodule, "mode_coverage")
    row = {"seed": seed, "branch": branch, "steps": module.generator_steps, "protocol": values, "seconds": round(seconds),
           "stopped_by": None if objects["stopped_by"] is None else objects["stopped_by"]["kind"],
           # what the branch ran in (train() set the thread count to cfg.cpu_threads, if any, and left it)
           "precision": str(objects["trainer"].precision), "threads": torch.get_num_threads()}
    with torch.no_grad(), torch.random.fork_rng():
        for name, generator in (("ema", module.sampling_generator), ("raw", module.generator)):
            x = generator.sample(20000, generator=torch.Generator().manual_seed(8))
            v = mode_coverage(x, datamodule.modes, float(cfg.data.std))
            row[f"{name}/20000"] = [v["modes"], round(100 * float(v["high_quality"]), 2), round(float(v["reverse_kl"]), 4)]
            # distance to the nearest mode in std, whose median moves where the binary counts do not
            distance = torch.cdist(x, datamodule.modes.to(x)).min(dim=1).values / float(cfg.data.std)
            row[f"{name}/median_distance_std"] = float(distance.median())
    return row


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--forks", type=int, nargs="+", default=[22000, 26000], help="generator steps to branch at")
    parser.add_argument("--end", type=float, default=3e-5, help="learning rate at the last step of a cool-down")
    parser.add_argument("--out", type=Path, default=reproduce.PROJECT_ROOT / "benchmarks" / "results" / "r3gan_grid_cooldown_paired.jsonl")
    parser.add_argument("extra", nargs="*", help="further Hydra overrides for every branch (after --)")
    args = parser.parse_args(argv)
    cell_overrides = reproduce.cell_overrides(reproduce.Cell("r3gan", "grid", args.seed), None, args.extra)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = reproduce.compose_run([*cell_overrides, *NO_COOL_DOWN])
        with open_dict(base):
            base.paths.output_dir = str(root / "base")
        started = time.time()
        _, objects = train(base, callbacks=[SaveAt(args.forks, root)])
        rows.append(score(base, objects, args.seed, "base", time.time() - started))
        held, total = float(base.model.schedules.lr.value.end), int(base.generator_steps)
        for fork in args.forks:
            cfg = reproduce.compose_run([*cell_overrides, f"model.schedules.lr.value.then_from={fork}",
                                         f"model.schedules.lr.value.then.start={held}", f"model.schedules.lr.value.then.end={args.end}",
                                         f"model.schedules.lr.value.then.steps={total - fork}"])
            with open_dict(cfg):
                cfg.paths.output_dir = str(root / f"cool{fork}")
                cfg.ckpt_path = str(root / f"fork{fork}.ckpt")
            started, start = time.time(), StartStep()
            _, objects = train(cfg, callbacks=[start])
            rows.append({**score(cfg, objects, args.seed, f"cool{fork}->{args.end:g}", time.time() - started),
                         "resumed_at": start.step})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
            print(row, flush=True)
    return rows


if __name__ == "__main__":
    main()
