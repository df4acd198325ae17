"""Small-data tricks at a fixed budget: fid_digits of variants with and without DiffAugment / ADA / LeCam.

    python benchmarks/small_data.py --variants dcgan sngan --tricks none diffaugment ada lecam \
        --seeds 0 1 2 --steps 1500 [--arch resnet] [-- model.ema_decay=0.999 ...]
    python benchmarks/small_data.py --table      # only print the table of what the results file holds
    python benchmarks/small_data.py --variants cgan --tricks none --also class_accuracy -- 'metrics=[fid_digits,class_accuracy]'

Each run is a real ``train.train`` of the composed config (``model=<variant>``, ``data=digits``, the trick's
overrides, ``seed=<seed>``, ``generator_steps=<steps>``; any further Hydra override after ``--``) without
logger, sample grids or checkpoints; the digits' metric suite (``fid_digits``: 2,000 samples from the
sampling generator, the EMA copy when EMA is on) scores the generator once, at the last generator step.

Tricks (combine with ``+``, e.g. ``diffaugment+lecam``): ``none``; ``diffaugment`` (conf/augment/diffaugment.yaml:
color,translation,cutout); ``ada`` (conf/augment/ada.yaml, the paper's speed: p moves at most 0.13 per 1,000
discriminator steps at batch 64, so short runs barely augment); ``lecam`` (weight 0.3, decay 0.99); ``ema``
(an EMA of G with decay 0.999, scored instead of G).

Every run appends one JSON line to ``--out`` (default benchmarks/results/small_data.jsonl), so the benchmark
runs in pieces (one variant or one seed at a time, several machines); a run already in the file (same
variant, trick, seed, steps, arch and extra overrides) is skipped unless ``--rerun``. The table (markdown:
mean, sample standard deviation and range of fid_digits over seeds, mean wall time per run) covers every
record in the file that matches ``--steps``, ``--arch`` and the extra overrides; a run made again with
``--rerun`` counts once, with its newest record.
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

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "small_data.jsonl"
METRIC = "fid_digits"


def trick_overrides(trick: str) -> list[str]:
    """Hydra overrides of a trick name; ``a+b`` combines tricks."""
    known = {
        "none": [],
        "diffaugment": ["augment=diffaugment"],
        "ada": ["augment=ada"],
        "ema": ["model.ema_decay=0.999"],
        "lecam": ["+model.penalties.lecam={_target_:gan.losses.LeCamPenalty,weight:0.3,decay:0.99}"],
    }
    parts = trick.split("+")
    unknown = [p for p in parts if p not in known]
    if unknown:
        raise SystemExit(f"unknown trick {'+'.join(unknown)!r}; expected {', '.join(known)} or a '+' combination")
    return [o for p in parts for o in known[p]]


def run_key(record: dict) -> tuple:
    return record["variant"], record["trick"], record["seed"], record["steps"], record["arch"], tuple(record["extra"])


def run_once(variant: str, trick: str, seed: int, steps: int, arch: str | None, extra: list[str], out_dir: Path) -> dict:
    """One training run; returns its JSON record."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from gan.callbacks import MetricsCallback
    from train import train

    overrides = [
        f"model={variant}", "data=digits", "logger=none", "callbacks=none", f"generator_steps={steps}", f"seed={seed}",
        f"paths.output_dir={out_dir}", "+trainer.enable_progress_bar=false", "+trainer.enable_model_summary=false",
        "+trainer.enable_checkpointing=false", *([f"arch={arch}"] if arch else []), *trick_overrides(trick), *extra,
    ]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    GlobalHydra.instance().clear()
    # the data's metric suite, scored once: at the last generator step
    scorer = MetricsCallback(OmegaConf.merge(cfg.metrics, {"every_n_generator_steps": steps}), dirpath=str(out_dir / "metrics"))
    started = time.time()
    _, objects = train(cfg, callbacks=[scorer])
    seconds = time.time() - started
    if not scorer.history:
        raise RuntimeError(f"{variant}/{trick}/seed {seed}: the generator was never scored")
    last = scorer.history[-1]
    return {
        "variant": variant, "trick": trick, "seed": seed, "steps": steps, "arch": arch, "extra": extra,
        METRIC: float(last["values"][METRIC]), "values": last["values"], "generator_step": last["generator_step"],
        "seconds": round(seconds, 1), "overrides": overrides, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "provenance": objects["module"].provenance,  # the code, libraries and machine of each start (gan.utils.provenance)
    }


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(records: list[dict], also: list[str] = ()) -> str:
    """Markdown: one row per (variant, trick), fid_digits mean / std / range over seeds (one record per seed: the
    newest of a run made again) and the change of the mean against the variant's ``none`` row; then, per name in
    ``also``, that value of the records (mean, std and the seeds' values)."""
    from gan.metrics.summary import newest_records

    groups: dict[tuple[str, str], list[dict]] = {}
    for record in newest_records(records, run_key):  # --rerun: a seed counts once, with its newest record
        groups.setdefault((record["variant"], record["trick"]), []).append(record)
    means = {key: statistics.fmean(r[METRIC] for r in rows) for key, rows in groups.items()}
    lines = [f"| variant | trick | {METRIC} mean (↓) | std | min - max | vs none | seeds | s / run |"
             + "".join(f" {name} mean ± std (seeds) |" for name in also), "|---|---|---|---|---|---|---|---|" + "---|" * len(also)]
    for (variant, trick), rows in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] != "none", item[0][1])):
        values = [r[METRIC] for r in rows]
        std = f"{statistics.stdev(values):.1f}" if len(values) > 1 else "-"
        base = means.get((variant, "none"))
        delta = f"{means[variant, trick] - base:+.1f}" if base is not None and trick != "none" else ""
        extra_columns = ""
        for name in also:
            seen = [r["values"][name] for r in rows if name in r.get("values", {})]
            spread = f" ± {statistics.stdev(seen):.3f}" if len(seen) > 1 else ""
            extra_columns += (f" {statistics.fmean(seen):.3f}{spread} ({', '.join(f'{v:.3f}' for v in seen)}) |" if seen else " - |")
        lines.append(f"| {variant} | {trick} | {means[variant, trick]:.1f} | {std} | {min(values):.1f} - {max(values):.1f} "
                     f"| {delta} | {len(values)} | {statistics.fmean(r['seconds'] for r in rows):.0f} |" + extra_columns)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["dcgan", "sngan"], help="model= names")
    parser.add_argument("--tricks", nargs="+", default=["none", "diffaugment", "ada", "lecam"],
                        help="none, diffaugment, ada, lecam, ema, or '+' combinations such as diffaugment+lecam")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500, help="generator steps per run")
    parser.add_argument("--arch", default=None, help="network family for every variant (arch=...), e.g. resnet")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON lines file the runs are appended to")
    parser.add_argument("--rerun", action="store_true", help="run again what the file already holds")
    parser.add_argument("--table", action="store_true", help="only print the table of the results file")
    parser.add_argument("--also", nargs="*", default=[], help="further values of the records to tabulate, e.g. "
                        "class_accuracy (with -- 'metrics=[fid_digits,class_accuracy]' for conditional variants)")
    parser.add_argument("extra", nargs="*", help="further Hydra overrides for every run (after --)")
    args = parser.parse_args()
    for trick in args.tricks:
        trick_overrides(trick)  # unknown tricks fail before the first run
    selected = dict(steps=args.steps, arch=args.arch, extra=list(args.extra))
    if not args.table:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        done = {run_key(r) for r in read_records(args.out)}
        for variant in args.variants:
            for trick in args.tricks:
                for seed in args.seeds:
                    key = (variant, trick, seed, args.steps, args.arch, tuple(args.extra))
                    if key in done and not args.rerun:
                        print(f"skip {variant} {trick} seed {seed}: already in {args.out}", flush=True)
                        continue
                    with tempfile.TemporaryDirectory() as tmp:
                        record = run_once(variant, trick, seed, args.steps, args.arch, list(args.extra), Path(tmp) / "run")
                    with open(args.out, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    print(f"{variant} {trick} seed {seed}: {METRIC} {record[METRIC]:.2f} in {record['seconds']:.0f} s", flush=True)
    records = [r for r in read_records(args.out) if all(r[k] == v for k, v in selected.items())]
    if not records:
        raise SystemExit(f"no results in {args.out} for steps={args.steps} arch={args.arch} extra={args.extra}")
    print(f"\n{METRIC} after {args.steps} generator steps on the embedded digits"
          f"{f', arch={args.arch}' if args.arch else ''}{', ' + ' '.join(args.extra) if args.extra else ''}:\n")
    print(table(records, args.also))


if __name__ == "__main__":
    main()
