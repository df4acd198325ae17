"""What the parts of a training step cost on this machine: the README's "Cost on a CPU" tables.

    python benchmarks/step_cost.py [--repeats 7] [--batch 64] [--only dcgan resnet_32 ...] \
        [--out benchmarks/results/step_cost.jsonl]

Networks are built from the composed config of each row (``build_module``, as ``train.py`` builds them, so
their widths, spectral norm and initialisation are the shipped ones; ``presets=none`` and the widths named in
the row), on one torch thread, at the embedded digits' shape (1x28x28). Inputs are uniform in [-1, 1]: a
convolution's cost does not depend on the pixel values. Each row is timed ``--repeats`` times after two
warm-up calls, and the median and range are printed and appended as one JSON record per row.

Rows:
- the discriminator's forward + backward on a real batch (``D(x).sum().backward()``, the parameters' and the
  input's gradients): the DCGAN-layout sngan D (width 64, spectral norm), alone and behind DiffAugment or ADA
  at p = 0.5, and DiffAugment alone (forward + backward to its input);
- ``LeCamPenalty`` on two batches of logits and ``AdaptiveAugment.observe`` (D's per-step extras);
- one generator update's work: G forward, D forward and backward, G backward (``D(G(z))``'s non-saturating
  loss), for each network family and width.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.utils.provenance import code_label  # noqa: E402

DIGITS = ["data=digits", "presets=none", "logger=none", "trainer.accelerator=cpu"]
DCGAN_SNGAN = ["model=sngan", "++model.generator.width=64", "++model.discriminator.width=64"]
# name: (what the README calls it, overrides)
NETWORKS = {
    "dcgan": ("DCGAN (sngan's: G width 64, D width 64 + SN)", DCGAN_SNGAN),
    "resnet_cifar": ("ResNet, CIFAR-10 widths (G 256, D 128)", ["model=sngan", "arch=resnet"]),
    "resnet_64": ("ResNet G 64 / D 64", ["model=sngan", "arch=resnet", "++model.generator.width=64",
                                         "++model.discriminator.width=64"]),
    "resnet_32": ("ResNet G 32 / D 32", ["model=sngan", "arch=resnet", "++model.generator.width=32",
                                         "++model.discriminator.width=32"]),
    "r3gan_64": ("R3GAN width 64 (2 blocks per stage)", ["model=r3gan", "++model.generator.width=64",
                                                          "++model.discriminator.width=64"]),
    "r3gan_128": ("R3GAN width 128", ["model=r3gan", "++model.generator.width=128", "++model.discriminator.width=128"]),
}


def build(overrides: list[str]):
    from benchmarks.reproduce import compose_run
    from gan.utils.instantiate import build_module

    cfg = compose_run([*DIGITS, *overrides])
    torch.manual_seed(0)
    return build_module(cfg)


def milliseconds(work: Callable[[], None], repeats: int) -> list[float]:
    for _ in range(2):  # warm-up: allocator, first-call dispatch
        work()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def parameters(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def discriminator_rows(batch: int, repeats: int) -> dict[str, dict]:
    module = build(DCGAN_SNGAN)
    reals = torch.rand(batch, 1, 28, 28) * 2 - 1
    augments = {"none": None, "diffaugment": build(DCGAN_SNGAN + ["augment=diffaugment"]).augment,
                "ada_p0.5": build(DCGAN_SNGAN + ["augment=ada"]).augment}
    augments["ada_p0.5"].p.fill_(0.5)
    rows = {}
    for name, augment in augments.items():
        def d_forward_backward(augment=augment):
            x = reals.clone().requires_grad_(True)
            module.discriminator(x if augment is None else augment(x)).sum().backward()
            module.discriminator.zero_grad(set_to_none=True)
        rows[f"d_forward_backward/{name}"] = {"what": f"sngan D (width 64, SN) forward + backward, augment {name}",
                                               "ms": milliseconds(d_forward_backward, repeats)}

    def augment_alone():
        x = reals.clone().requires_grad_(True)
        augments["diffaugment"](x).sum().backward()
    rows["diffaugment_alone"] = {"what": "DiffAugment (color,translation,cutout) forward + backward",
                                 "ms": milliseconds(augment_alone, repeats)}

    lecam = build(DCGAN_SNGAN + ["+model.penalties.lecam._target_=gan.losses.LeCamPenalty"]).penalties["lecam"]
    real_logits, fake_logits = torch.randn(batch), torch.randn(batch)
    rows["lecam_forward"] = {"what": "LeCamPenalty forward (given both sides' logits)",
                             "ms": milliseconds(lambda: lecam(None, None, None, real_logits, fake_logits), repeats * 20)}
    ada = augments["ada_p0.5"]
    rows["ada_observe"] = {"what": "AdaptiveAugment.observe", "ms": milliseconds(lambda: ada.observe(real_logits),
                                                                                  repeats * 20)}
    return rows


def generator_update_row(name: str, batch: int, repeats: int) -> dict:
    described, overrides = NETWORKS[name]
    module = build(overrides)
    generator, discriminator = module.generator, module.discriminator

    def work():
        fake = generator(torch.randn(batch, generator.latent_dim))
        F.softplus(-discriminator(fake)).mean().backward()
        generator.zero_grad(set_to_none=True)
        discriminator.zero_grad(set_to_none=True)

    return {"what": f"{described}: G forward + D forward/backward + G backward", "ms": milliseconds(work, repeats),
            "params_g": parameters(generator), "params_d": parameters(discriminator)}


def summary(ms: list[float]) -> dict:
    return {"median_ms": round(statistics.median(ms), 3), "min_ms": round(min(ms), 3), "max_ms": round(max(ms), 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--only", nargs="*", default=None,
                        help=f"rows to run: discriminator and/or any of {', '.join(NETWORKS)} (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="append one JSON record per row to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    chosen = args.only or ["discriminator", *NETWORKS]
    unknown = sorted(set(chosen) - {"discriminator", *NETWORKS})
    if unknown:
        parser.error(f"--only {' '.join(unknown)}: expected discriminator or one of {', '.join(NETWORKS)}")
    context = {"commit": code_label(), "torch": torch.__version__, "threads": 1, "batch": args.batch,
               "repeats": args.repeats, "machine": platform.processor() or platform.machine(),
               "date": time.strftime("%Y-%m-%d")}
    rows = {}
    if "discriminator" in chosen:
        measured = discriminator_rows(args.batch, args.repeats)
        rows |= {name: row | {"load": round(os.getloadavg()[0], 2)} for name, row in measured.items()}
    for name in chosen:
        if name in NETWORKS:  # the 1-minute load average after the row: another process's work slows it
            rows[f"generator_update/{name}"] = generator_update_row(name, args.batch, args.repeats) | {
                "load": round(os.getloadavg()[0], 2)}
    print(f"| row | ms, median (min-max) of {args.repeats} | params G / D |\n|---|---|---|")
    for name, row in rows.items():
        s = summary(row["ms"])
        params = f"{row['params_g'] / 1e6:.2f}M / {row['params_d'] / 1e6:.2f}M" if "params_g" in row else ""
        print(f"| {row['what']} | {s['median_ms']:g} ({s['min_ms']:g}-{s['max_ms']:g}) | {params} |")
        if args.out:
            with args.out.open("a") as out:
                out.write(json.dumps({"row": name, **context, **row, **s}) + "\n")


if __name__ == "__main__":
    main()
