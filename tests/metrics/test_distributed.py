"""Metrics under DDP: each rank draws and extracts its share of the samples (disjoint latent seeds whose
union is the single-process set), rank 0 gathers the features and computes every metric once, and the
values equal the single-process values. Two CPU processes with gloo."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gan.metrics import MetricSuite
from gan.metrics.sharding import Batches, batch_seed
from tests.metrics.conftest import Recording

COMPUTE = {"fid_digits": {}, "kid": {"extractor": "digit_classifier", "subsets": 5, "subset_size": 100},
           "density_coverage": {"extractor": "digit_classifier"}}
SETTINGS = dict(num_samples=400, num_real=600, batch_size=100)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_rank_shares_of_latent_seeds_are_disjoint_and_make_up_the_single_process_set(world_size):
    batches = Batches(total=1050, batch_size=100)  # 11 batches, the last one of 50
    single = {batch_seed(0, b) for b in batches.of_rank(0, 1)}
    shares = [{batch_seed(0, b) for b in batches.of_rank(rank, world_size)} for rank in range(world_size)]
    assert len(single) == len(batches) == 11  # one distinct seed per batch
    assert all(not (shares[r] & shares[s]) for r in range(world_size) for s in range(r + 1, world_size))
    assert set().union(*shares) == single
    sizes = [sum(batches.size(b) for b in batches.of_rank(rank, world_size)) for rank in range(world_size)]
    assert sum(sizes) == 1050 and max(sizes) - min(sizes) <= 100  # balanced to within one batch
    assert batch_seed(1, 0) != batch_seed(0, 0) and batch_seed(0, 1) != batch_seed(0, 0)
    # latent seeds are independent evaluations: no batch of one is a batch of another (seed + batch made seed 1's
    # batches seed 0's shifted by one, an interval over them too narrow; a mutation)
    assert len({batch_seed(seed, b) for seed in range(3) for b in range(11)}) == 33


class TinyGenerator(nn.Module):
    """A fixed random map from 8 latent dimensions to 28x28 images, with a buffer standing in for BatchNorm
    running statistics (which DDP does not keep equal across ranks)."""

    num_classes = None

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.net = nn.Linear(8, 28 * 28)
        self.register_buffer("offset", torch.zeros(()))

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None):
        return torch.tanh(self.net(torch.randn(n, 8, generator=generator)) + self.offset).view(n, 1, 28, 28)


def rows(recording: Recording) -> int:
    return sum(len(output["features"]) for output in recording.outputs)


def digits_data(data_dir: str):
    from gan.data.digits import DigitsDataModule

    data = DigitsDataModule(root=data_dir)
    data.setup("fit")
    return data


def rank_main(rank: int, world_size: int, tmp: str, data_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world_size)
    try:
        generator = TinyGenerator()
        if rank == 1:
            generator.offset.fill_(0.5)  # rank 1's buffers drifted: scoring must use rank 0's
        suite = MetricSuite(COMPUTE, cache_dir=f"{tmp}/cache", **SETTINGS)
        suite.extractors["digit_classifier"] = recording = Recording(suite.extractors["digit_classifier"])
        values, protocol = suite.evaluate_generator(generator, digits_data(data_dir))
        assert float(generator.offset) == (0.5 if rank == 1 else 0.0)  # the run's own generator is left alone
        Path(f"{tmp}/rank{rank}.json").write_text(json.dumps({"values": values, "rows": rows(recording), "protocol": protocol}))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two Python processes importing torch: ~10 s on an idle 2-core machine
def test_two_processes_give_the_single_process_values_with_half_the_features_each(tmp_path, data_dir):
    digits_data(str(data_dir))  # decompress the embedded digits once, before two processes race to
    mp.spawn(rank_main, args=(2, str(tmp_path), str(data_dir)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]

    suite = MetricSuite(COMPUTE, cache_dir=str(tmp_path / "single_cache"), **SETTINGS)
    suite.extractors["digit_classifier"] = recording = Recording(suite.extractors["digit_classifier"])
    single, protocol = suite.evaluate_generator(TinyGenerator(), digits_data(str(data_dir)))

    # 400 fakes + 600 reals in batches of 100, dealt out alternately: 200 + 300 rows each, 1,000 in one process
    assert [rank["rows"] for rank in ranks] == [500, 500] and rows(recording) == 1000
    for rank in ranks:
        assert rank["values"].keys() == single.keys()  # every rank logs rank 0's values
        for name, value in single.items():
            assert rank["values"][name] == pytest.approx(value, rel=1e-6, abs=1e-12), name
    assert ranks[0]["protocol"] == protocol
    # one writer: rank 0 stored the real features once, identical to the single process's
    (ddp_file,), (single_file,) = (list((tmp_path / name).glob("*.pt")) for name in ("cache", "single_cache"))
    assert ddp_file.name == single_file.name
    ddp_features, single_features = (torch.load(path, weights_only=True)["features"] for path in (ddp_file, single_file))
    assert all(torch.equal(ddp_features[k], single_features[k]) for k in single_features)


@pytest.mark.slow
def test_ddp_training_logs_the_value_one_process_gives_for_its_checkpoint(make_cfg, tmp_path):
    """``train.py trainer=ddp_cpu``: the metrics callback on two ranks; its last logged value equals
    evaluate.py's on the saved checkpoint in one process (same protocol: counts, seeds, batch size)."""
    import subprocess
    import sys

    from evaluate import evaluate
    from gan.utils.config import PROJECT_ROOT
    from tests.conftest import tiny_overrides

    metrics = ["metrics.every_n_generator_steps=2", "metrics.num_samples=200", "metrics.num_real=300"]
    command = [sys.executable, "train.py", "trainer=ddp_cpu", *tiny_overrides("dcgan", steps=4), *metrics,
               "callbacks.sample_grid=null", f"hydra.run.dir={tmp_path / 'ddp'}", f"paths.data_dir={tmp_path / 'data'}"]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "ddp" / "metrics" / "metrics.jsonl").read_text().splitlines()]
    assert [row["generator_step"] for row in rows] == [2, 4]  # written once (rank 0), at the scheduled steps
    report = evaluate(make_cfg([f"ckpt_path={tmp_path / 'ddp' / 'checkpoints' / 'last.ckpt'}", "num_samples=200",
                                "metrics.num_real=300", "interpolation.rows=0"],
                               config_name="evaluate", output_dir=tmp_path / "eval"))
    assert report["values"]["fid_digits"] == pytest.approx(rows[-1]["values"]["fid_digits"], rel=1e-6)
