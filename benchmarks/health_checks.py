"""The health checks on the 2D toys at the shipped defaults: which detections fire, when, and on what evidence.

    python benchmarks/health_checks.py                                  # the plan below, seeds 0-2
    python benchmarks/health_checks.py --runs dcgan:ring r3gan:grid --seeds 0 --steps 2000
    python benchmarks/health_checks.py --runs gan:grid --name pacgan -- experiment=pacgan   # extra overrides
    python benchmarks/health_checks.py --table                          # the table of what the results file holds

Each run is a real ``train.train`` of ``model=<variant> data=toy2d_<data>`` (the variant's toy preset), ``seed``,
``generator_steps=--steps``, with the shipped health callback as the only callback and ``logger=csv`` (no grids,
metrics or checkpoints). From the run directory it reads the detections (``health.jsonl``) and, at every
mode-collapse check (every 100 generator steps from 500), ``health/effective_modes`` (the effective number of
the mixture's modes the 256 fixed-noise samples fall on, their nearest mean's histogram) and
``health/diversity_ratio``. The record says whether the run lost modes it had and whether the check said so.

The plan: the toy presets of r3gan, gan, dcgan, lsgan (both toys), sngan and wgan_gp (the grid), and cases that
collapse or oscillate: ``experiment=pacgan`` on the grid (``pacgan``), and dcgan (both toys) and lsgan (the grid)
with the batch norm in D that their toy presets had until 2026-12-07 (``dcgan_bn``, ``lsgan_bn``:
``model.discriminator.norm=batch``), whose ring runs collapsed. The records of 2026-12-05, of the presets and the
health check before 2026-12-07 (dcgan and lsgan with batch norm in D under their own names, sngan's earlier
optimizer, no ``min_modes_of_data`` floor), are in ``benchmarks/results/health_checks_superseded.jsonl``.
Every run appends one JSON line to ``--out``
(default benchmarks/results/health_checks.jsonl); a run already there (same name, data, seed, steps, overrides)
is skipped unless ``--rerun``.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.utils.config import PROJECT_ROOT  # noqa: E402
from gan.utils.provenance import code_label  # noqa: E402

RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "health_checks.jsonl"
PLAN = ["r3gan:grid", "r3gan:ring", "gan:grid", "gan:ring", "dcgan:ring", "dcgan:grid", "lsgan:ring", "lsgan:grid",
        "sngan:grid", "wgan_gp:grid", "pacgan:grid", "dcgan_bn:ring", "dcgan_bn:grid", "lsgan_bn:grid"]
#: plan names that are not a model: (model, overrides)
NAMED = {"pacgan": ("gan", ["experiment=pacgan"]),
         "dcgan_bn": ("dcgan", ["model.discriminator.norm=batch"]),  # the toy preset's D until 2026-12-07
         "lsgan_bn": ("lsgan", ["model.discriminator.norm=batch"])}


def overrides_of(name: str, data: str, seed: int, steps: int, extra: list[str], out_dir: Path) -> list[str]:
    model, named = NAMED.get(name, (name, []))
    return [f"model={model}", f"data=toy2d_{data}", *named, f"seed={seed}", f"generator_steps={steps}",
            "callbacks=gan_health", "logger=csv", "metrics=none", "cpu_threads=1", "+trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
            f"paths.output_dir={out_dir}", *extra]


def read_logged(run_dir: Path, key: str) -> list[tuple[int, float]]:
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return [(int(float(row["train/generator_step"])), float(row[key])) for row in csv.DictReader(handle) if row.get(key)]


def run_one(name: str, data: str, seed: int, steps: int, extra: list[str]) -> dict:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from train import train

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=overrides_of(name, data, seed, steps, extra, run_dir))
        GlobalHydra.instance().clear()
        started = time.time()
        _, objects = train(cfg)
        seconds = time.time() - started
        events_path = run_dir / "health.jsonl"
        events = [json.loads(line) for line in events_path.read_text().splitlines()] if events_path.exists() else []
        effective = read_logged(run_dir, "health/effective_modes")
        ratio = read_logged(run_dir, "health/diversity_ratio")
    return {"name": name, "data": data, "seed": seed, "steps": steps, "extra": extra,
            "generator_steps_done": objects["module"].generator_steps, "seconds": round(seconds, 1),
            "events": [{k: e[k] for k in ("kind", "generator_step", "evidence")} for e in events],
            "effective_modes": effective, "diversity_ratio": ratio, "code": code_label()}


def key_of(record: dict) -> tuple:
    return record["name"], record["data"], record["seed"], record["steps"], tuple(record["extra"])


def lost_modes(record: dict, retention: float = 0.5) -> tuple[int, float, float] | None:
    """(step, value, best before it) of the first check whose effective modes fell below ``retention`` x the best
    of the earlier checks: what the check should have said."""
    best = None
    for step, value in record["effective_modes"]:
        if best is not None and value < retention * best:
            return step, value, best
        best = value if best is None else max(best, value)
    return None


def table(records: list[dict]) -> str:
    newest: dict[tuple, dict] = {}
    for record in records:
        newest[key_of(record)] = record
    groups: dict[tuple, list[dict]] = {}
    for record in newest.values():
        groups.setdefault((record["name"], record["data"], record["steps"], tuple(record["extra"])), []).append(record)
    lines = ["| preset | data | generator steps | seed | effective modes: best (step) -> last | lowest diversity ratio "
             "| modes lost (first check below 0.5 x best) | detections | s |", "|---|---|---|---|---|---|---|---|---|"]
    for (name, data, steps, extra), group in sorted(groups.items()):
        for record in sorted(group, key=lambda r: r["seed"]):
            effective = record["effective_modes"]
            best_step, best = max(effective, key=lambda item: item[1]) if effective else (None, float("nan"))
            last = effective[-1][1] if effective else float("nan")
            lowest = min((v for _, v in record["diversity_ratio"]), default=float("nan"))
            lost = lost_modes(record)
            lost_text = f"step {lost[0]}: {lost[1]:.1f} of best {lost[2]:.1f}" if lost else "no"
            fired = ", ".join(f"{e['kind']} @ {e['generator_step']}" for e in record["events"]) or "none"
            label = name + (" " + " ".join(extra) if extra else "")
            lines.append(f"| {label} | {data} | {steps} | {record['seed']} | {best:.1f} ({best_step}) -> {last:.1f} | "
                         f"{lowest:.2f} | {lost_text} | {fired} | {record['seconds']:.0f} |")
    agree = [detection_agrees(r) for r in newest.values()]
    lines.append(f"\nruns where the mode-collapse detection agrees with the effective-modes trajectory: {sum(agree)} of {len(agree)}")
    floor = [f"{r['name']}:{r['data']} seed {r['seed']} @ {e['generator_step']}" for r in newest.values()
             for e in r["events"] if e["kind"] == "mode_collapse" and by_floor_alone(e)]
    if floor:
        lines.append("detections by the level floor alone (a generator that never spread over the modes: no loss is "
                     f"needed to agree): {', '.join(floor)}")
    return "\n".join(lines)


def detection_agrees(record: dict) -> bool:
    """Whether the check said what the trajectory shows: a mode-collapse detection where modes were lost, none where
    they were not. The level floor (``min_modes_of_data``) reports a generator that never spread over the modes,
    which is no loss: its detections do not count against a run without a loss (a detection fires once, so a run
    reported by the floor that loses modes later has said so already)."""
    detections = [e for e in record["events"] if e["kind"] == "mode_collapse"]
    if lost_modes(record):
        return bool(detections)
    return all(by_floor_alone(e) for e in detections)


def by_floor_alone(event: dict) -> bool:
    """A mode-collapse detection whose evidence is the level floor's alone: no drop from a best, no low spread."""
    evidence = event.get("evidence") or {}
    return ("min_modes_of_data" in evidence and "best_effective_modes" not in evidence
            and evidence.get("diversity_ratio", 0) >= evidence.get("min_diversity_ratio", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=PLAN, help="<variant or plan name>:<ring|grid> (default: the plan)")
    parser.add_argument("--name", help="record the runs under this name instead of the variant's (with extra overrides)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--rerun", action="store_true")
    parser.add_argument("--table", action="store_true", help="print the table of --out and exit")
    parser.add_argument("extra", nargs="*", help="Hydra overrides for every run (after --)")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.out.read_text().splitlines()] if args.out.exists() else []
    if not args.table:
        done = {key_of(r) for r in records}
        for run in args.runs:
            variant, _, data = run.partition(":")
            if data not in ("ring", "grid"):
                raise SystemExit(f"--runs {run!r}: expected <variant>:ring or <variant>:grid")
            name = args.name or variant
            if args.name:
                NAMED[name] = (variant, [])
            for seed in args.seeds:
                key = (name, data, seed, args.steps, tuple(args.extra))
                if key in done and not args.rerun:
                    continue
                record = run_one(name, data, seed, args.steps, list(args.extra))
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with open(args.out, "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                records.append(record)
                print(f"{name}:{data} seed {seed}: {[(e['kind'], e['generator_step']) for e in record['events']]} "
                      f"({record['seconds']:.0f} s)", flush=True)
    print(table(records))


if __name__ == "__main__":
    main()
