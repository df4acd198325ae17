"""Check the vendored DINOv2 backbone (gan/metrics/dinov2.py) against the official code.

    git clone https://github.com/facebookresearch/dinov2 /tmp/dinov2
    python benchmarks/metrics_dinov2_check.py --official /tmp/dinov2 [--weights dinov2_vits14_pretrain.pth]

For each backbone the official ``dinov2_vit*14(pretrained=False)`` is built from the checkout; its state
dict (random, or the given weights file for the matching backbone) is loaded into the vendored network with
``strict=True``, and both map the same 224x224 batch to CLS features. Prints the largest absolute
difference; 0 means the vendored network computes exactly what torch.hub's would.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan.metrics.dinov2 import ARCHITECTURES, DinoVisionTransformer, weights_file_stem  # noqa: E402


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", required=True, help="a checkout of github.com/facebookresearch/dinov2")
    parser.add_argument("--weights", help="an official *_pretrain.pth to load instead of the random init")
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    args = parser.parse_args(argv)
    os.environ["XFORMERS_DISABLED"] = "1"  # the official code's plain-PyTorch attention, as on a CPU
    sys.path.insert(0, args.official)
    warnings.filterwarnings("ignore", message="xFormers")
    from dinov2.hub import backbones

    images = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    worst = 0.0
    for architecture in args.architectures:
        official = getattr(backbones, weights_file_stem(architecture))(pretrained=False).eval()
        if args.weights and Path(args.weights).name.startswith(weights_file_stem(architecture) + "_"):
            official.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
        vendored = DinoVisionTransformer(architecture).eval()
        vendored.load_state_dict(official.state_dict(), strict=True)
        with torch.no_grad():
            difference = float((official(images) - vendored(images)).abs().max())
        worst = max(worst, difference)
        print(f"{architecture}: max |official - vendored| = {difference:.3g}")
    return worst


if __name__ == "__main__":
    main()
