"""What an interval checkpoint costs: the interval file and ``last.ckpt``, written twice or named twice.

    python benchmarks/checkpoint_save.py                    # the default run's networks (dcgan, digits), 3 repeats
    python benchmarks/checkpoint_save.py --name wide -- model.generator.width=256 model.discriminator.width=256
    python benchmarks/checkpoint_save.py --table

At every checkpoint interval ``GANModelCheckpoint`` saves ``gstep_*.ckpt`` and then ``last.ckpt`` of the same
step. Until 2026-12-07 both were full saves of the same state; now ``last.ckpt`` is a hard link to the interval
file (a copy where the file system has no hard links). Each repeat trains the composed config (``data=digits``
unless overridden, ``--intervals`` intervals of ``--every`` generator steps, no metrics, no logger) twice, once as
shipped (``second_name``) and once with every save written in full (``full``, the code path before), in
alternating order, and times every call of the callback's ``_save_checkpoint`` with a monotonic clock. The
record holds, per mode, the median seconds per interval (interval file + last.ckpt), what the run's checkpoint
files hold on disk at its end (st_blocks, a file of two names counted once: the newest interval file and
last.ckpt, one interval's worth with the shipped ``save_top_k: 1``) and the checkpoint's size. The training
steps are not timed. Results: ``benchmarks/results/checkpoint_save.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.utils.config import PROJECT_ROOT  # noqa: E402
from gan.utils.provenance import code_label  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "checkpoint_save.jsonl"
MODES = ("second_name", "full")


def timed_run(overrides: list[str], mode: str, every: int, intervals: int) -> dict:
    """Train with checkpoints every ``every`` generator steps: the seconds of each save and the bytes on disk."""
    from omegaconf import open_dict

    from benchmarks.reproduce import compose_run
    from gan.callbacks import GANModelCheckpoint
    from train import train

    cfg = compose_run(["data=digits", "metrics=none", "logger=none", "callbacks.best_checkpoint=null",
                       "callbacks.sample_grid=null", "+trainer.enable_progress_bar=false",
                       "+trainer.enable_model_summary=false", f"generator_steps={every * intervals}",
                       f"callbacks.model_checkpoint.every_n_train_steps='${{optimizer_steps:{every},${{model.n_critic}},"
                       f"${{model.n_generator}}}}'", *overrides])
    seconds: list[tuple[str, float]] = []
    save, decide = GANModelCheckpoint._save_checkpoint, GANModelCheckpoint._saved_at_this_step

    def timed_save(self, trainer, filepath):
        started = time.perf_counter()
        save(self, trainer, filepath)
        seconds.append((Path(filepath).name, time.perf_counter() - started))

    GANModelCheckpoint._save_checkpoint = timed_save
    if mode == "full":
        GANModelCheckpoint._saved_at_this_step = lambda self, trainer, filepath: None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with open_dict(cfg):
                cfg.paths.output_dir = str(Path(tmp) / "run")
            train(cfg)
            files = list((Path(tmp) / "run" / "checkpoints").glob("*.ckpt"))
            # a hard link's blocks are counted once: the bytes the interval saves left on disk
            inodes = {f.stat().st_ino: f.stat().st_blocks * 512 for f in files}
            size = max(f.stat().st_size for f in files)
    finally:
        GANModelCheckpoint._save_checkpoint, GANModelCheckpoint._saved_at_this_step = save, decide
    per_interval = [seconds[i][1] + seconds[i + 1][1] for i in range(0, 2 * intervals, 2)]
    assert [name for name, _ in seconds[:2]] == [f"gstep_{every:07d}.ckpt", "last.ckpt"], seconds
    return {"seconds_per_interval": statistics.median(per_interval), "on_disk_bytes": sum(inodes.values()),
            "checkpoint_bytes": size, "files": len(files)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="default", help="the row's name in the table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every", type=int, default=2, help="generator steps between two checkpoints")
    parser.add_argument("--intervals", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
    parser.add_argument("overrides", nargs="*", help="after --: Hydra overrides of the trained config")
    args = parser.parse_args(argv)
    if args.table:
        print_table(args.out)
        return
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        for mode in (MODES if repeat % 2 == 0 else MODES[::-1]):  # alternating: drift in the machine's load
            runs[mode].append(timed_run(args.overrides, mode, args.every, args.intervals))
            print(f"repeat {repeat} {mode}: {runs[mode][-1]}", flush=True)
    record = {"name": args.name, "overrides": args.overrides, "every": args.every, "intervals": args.intervals,
              "repeats": args.repeats, "code": code_label(),
              **{mode: {"seconds_per_interval": [r["seconds_per_interval"] for r in runs[mode]],
                        "on_disk_bytes": runs[mode][0]["on_disk_bytes"],
                        "checkpoint_bytes": runs[mode][0]["checkpoint_bytes"]} for mode in MODES}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as out:
        out.write(json.dumps(record) + "\n")
    print_table(args.out)


def print_table(path: Path) -> None:
    print("| run | checkpoint MB | full: s per interval (median, range) | second name: s per interval | "
          "full: MB on disk | second name: MB on disk |")
    print("|---|---|---|---|---|---|")
    for line in path.read_text().splitlines() if path.exists() else []:
        r = json.loads(line)
        full, linked = r["full"], r["second_name"]

        def shown(values):
            return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"

        print(f"| {r['name']} | {full['checkpoint_bytes'] / 1e6:.1f} | {shown(full['seconds_per_interval'])} | "
              f"{shown(linked['seconds_per_interval'])} | {full['on_disk_bytes'] / 1e6:.1f} | "
              f"{linked['on_disk_bytes'] / 1e6:.1f} |")


if __name__ == "__main__":
    main()
