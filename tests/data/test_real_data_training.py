"""One short train.train per real-data config, on tiny copies written in the real formats."""
import pytest

from gan.data import DatasetNotFoundError
from tests.conftest import tiny_overrides
from tests.data.fake_datasets import write_celeba, write_cifar10, write_image_tree, write_mnist
from train import train

WRITERS = {
    "mnist": lambda root: write_mnist(root, "MNIST"),
    "fashion_mnist": lambda root: write_mnist(root, "FashionMNIST"),
    "cifar10": write_cifar10,
    "celeba": write_celeba,
    "image_folder": lambda root: write_image_tree(root / "images"),
    "stacked_mnist": write_mnist,  # from these fake MNIST digits, not the embedded ones
}
SHAPES = {"mnist": [1, 28, 28], "fashion_mnist": [1, 28, 28], "cifar10": [3, 32, 32], "celeba": [3, 64, 64],
          "image_folder": [3, 64, 64], "stacked_mnist": [3, 28, 28]}


@pytest.mark.slow
@pytest.mark.parametrize("data", sorted(WRITERS))
def test_trains_on_each_real_format(make_cfg, tmp_path, data):
    root = tmp_path / "datasets"
    WRITERS[data](root)
    # image_folder keeps its 2 worker processes: the epoch must survive its broken files in workers too
    workers = 2 if data == "image_folder" else 0
    # each data set's default metrics: training must start offline, without Inception weights (Inception
    # metrics are evaluate.py-only by default, and a metric that does not run in training is not built)
    overrides = [f"data.root={root}", "data.batch_size=2", f"data.num_workers={workers}"]
    cfg = make_cfg(tiny_overrides("dcgan", data, steps=2) + overrides)
    _, objects = train(cfg)
    assert list(cfg.data.sample_shape) == SHAPES[data]
    assert objects["module"].generator_steps == 2
    assert objects["module"].generator.sample(2).shape == (2, *SHAPES[data])
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == ["gstep_0000002.png"]


def test_missing_dataset_fails_before_the_model_is_built(make_cfg, tmp_path, monkeypatch):
    import train as train_module

    def must_not_run(cfg):
        raise AssertionError("the model was built although the data is missing")

    monkeypatch.setattr(train_module, "build_module", must_not_run)
    cfg = make_cfg(tiny_overrides("dcgan", "cifar10") + [f"data.root={tmp_path / 'nothing'}", "data.download=false"])
    with pytest.raises(DatasetNotFoundError, match=r"cifar-10-batches-py.*data.root"):
        train(cfg)
