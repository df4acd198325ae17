"""A data module and a metric of one's own (an audit): what the framework checks of them and the one line it says.

Data: a plain LightningDataModule, a ``setup`` that sets no ``train_set``, an empty set, samples of another shape
than declared, values the generator's output cannot reach, each refused once after ``setup`` instead of failing
mid-training with a traceback. Metrics: a ``compute`` that returns other keys than its ``directions`` (the best
checkpoint was then never written, without a word) or no dict of numbers, and ``register_metric``."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from gan.data import DigitsDataModule, GANDataModule, Toy2DDataModule
from gan.metrics import METRICS, Metric, MetricSuite
from gan.utils.config import PROJECT_ROOT
from gan.utils.errors import ConfigError, DataError
from tests.conftest import tiny_overrides

HERE = __name__  # the dotted path the user-style classes below are found under (tests.test_own_parts_data)


def raises_one_line(error_type, pattern, call):
    """The error ``call()`` raises, after checking its exact type, that it is one line and that it matches."""
    with pytest.raises(error_type) as caught:
        call()
    assert type(caught.value) is error_type, caught.value
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(pattern, message), message
    return message


# ------------------------------------------------------------------------------------- data modules of one's own
class PlainSpiral(pl.LightningDataModule):
    """What the audit wrote first: a Lightning data module that does not subclass GANDataModule."""

    def __init__(self, sample_shape=(2,), generator_output="identity"):
        super().__init__()
        self.sample_shape = tuple(sample_shape)


class Points(GANDataModule):
    """Points (or images) of one's own, given as a tensor; labels -1."""

    kind = "points"

    def __init__(self, points: torch.Tensor, sample_shape=(2,), generator_output="identity", kind="points", **options):
        super().__init__(sample_shape, generator_output=generator_output, **options)
        self.points, self.kind = points, kind

    def setup(self, stage=None):
        if self.train_set is None:
            self.train_set = TensorDataset(self.points, torch.full((len(self.points),), -1))


class Forgetful(GANDataModule):
    """A ``setup`` that reads its data into another attribute and never sets ``train_set``."""

    def __init__(self):
        super().__init__((2,), generator_output="identity")

    def setup(self, stage=None):
        self.data = TensorDataset(torch.zeros(4, 2), torch.zeros(4))


class Items(Dataset):
    """A dataset of one's own yielding ``item(index)``; counts its reads."""

    def __init__(self, item, size=10):
        self.item, self.size, self.reads = item, size, 0

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        self.reads += 1
        return self.item(index)


class Stream(torch.utils.data.IterableDataset):
    """A stream of samples: the sampler draws indices, which a stream has not."""

    def __iter__(self):
        yield torch.zeros(1, 4, 4), -1


class OwnItems(GANDataModule):
    """``train_set`` set in ``__init__`` and no ``setup`` of its own (GANDataModule's runs the check)."""

    def __init__(self, dataset, sample_shape=(1, 4, 4)):
        super().__init__(sample_shape)
        self.train_set = dataset


class DigitsIn255(DigitsDataModule):
    """The embedded digits as the audit's images were: in [0, 255] (a setup that calls its base class's)."""

    def setup(self, stage=None):
        if self.train_set is None:
            super().setup(stage)
            images, labels = self.train_set.tensors
            self.train_set = TensorDataset((images + 1) * 127.5, labels)


def test_a_data_module_that_is_no_gan_data_module_is_refused_naming_the_base_class():
    expected = (rf"^data._target_={HERE}.PlainSpiral: PlainSpiral is a LightningDataModule but not a "
                r"gan.data.GANDataModule; expected a data module of one's own to subclass gan.data.GANDataModule ")
    from gan.data import check_data_module_class

    raises_one_line(ConfigError, expected, lambda: check_data_module_class(f"{HERE}.PlainSpiral"))  # before it is built
    raises_one_line(ConfigError, expected, lambda: check_data_module_class(PlainSpiral()))  # or once it is
    raises_one_line(ConfigError, r"^data._target_=builtins.dict: dict is not a gan.data.GANDataModule",
                    lambda: check_data_module_class(dict))
    for accepted in (f"{HERE}.Points", "gan.data.DigitsDataModule", Toy2DDataModule, "no_such_module_xyz.Data", None):
        check_data_module_class(accepted)  # a path that does not import is Hydra's to name


@pytest.mark.parametrize("module,error_type,pattern", [
    # was: TypeError: object of type 'NoneType' has no len()
    (lambda: Forgetful(), ConfigError,
     r"^data Forgetful: Forgetful.setup\('fit'\) left self.train_set None; expected setup to set self.train_set to the "
     r"training set, a Dataset of \(sample, label\) pairs \(label -1 for unlabelled data\)$"),
    # was: ZeroDivisionError: integer division or modulo by zero
    (lambda: Points(torch.zeros(0, 2)), DataError,
     r"^data Points: the training set of Points \(TensorDataset\) is empty; expected at least one sample$"),
    # was: RuntimeError: Sizes of tensors must match ...
    (lambda: Points(torch.zeros(10, 3)), ConfigError,
     r"^data Points yields samples of shape \[3\] \(training sample 0\), but its config declares sample_shape=\[2\], "
     r"the shape the networks are built for; expected every sample of that shape$"),
    # was: diverged at step 8, nothing said of the range
    (lambda: Points(torch.randint(0, 256, (10, 1, 4, 4)).float(), sample_shape=(1, 4, 4), generator_output="tanh",
                    kind="image"), DataError,
     r"^data Points yields values in \[\d+, 25\d\] \(8 training samples read\), outside the \[-1, 1\] its generator's "
     r"output reaches \(data.generator_output=tanh\); expected samples scaled to \[-1, 1\] \(uint8 images: x / 127.5 - 1; "
     r"torchvision: ToTensor\(\) then Normalize\(0.5, 0.5\)\), or data.generator_output=identity for unbounded values$"),
    (lambda: Points(3 * torch.linspace(-1, 1, 20).unsqueeze(1).repeat(1, 2), generator_output="tanh"), DataError,
     r"^data Points yields values in \[-3, 3\] \(8 training samples read\), outside the \[-1, 1\] its generator's output "
     r"reaches \(data.generator_output=tanh\); expected samples scaled to \[-1, 1\], or data.generator_output=identity"),
    (lambda: Points(torch.linspace(-1, 1, 20).unsqueeze(1).repeat(1, 2), generator_output="sigmoid"), DataError,
     r"^data Points yields values in \[-1, 1\] .*outside the \[0, 1\] its generator's output reaches "
     r"\(data.generator_output=sigmoid\); expected data.generator_output=tanh, whose output reaches them, or samples "
     r"scaled to \[0, 1\]$"),
    (lambda: Points(torch.tensor([[0.0, float("nan")]] * 4)), DataError, r"^data Points: training sample 0 holds nan; expected finite values$"),
    (lambda: OwnItems(Items(lambda i: (torch.zeros(1, 4, 4, dtype=torch.uint8), -1))), ConfigError,
     r"^data OwnItems: training sample 0 is a tensor of torch.uint8; expected floating-point samples \(torch.float32\) "
     r"scaled to \[-1, 1\] \(uint8 images: x / 127.5 - 1\)$"),
    (lambda: OwnItems(Items(lambda i: torch.zeros(1, 4, 4))), ConfigError,
     r"^data OwnItems: item 0 of the training set is of type Tensor; expected \(sample, label\) pairs \(label -1 for "
     r"unlabelled data\): batches are \(samples, labels\)$"),
    (lambda: OwnItems(Items(lambda i: (torch.zeros(1, 4, 4).numpy(), -1))), ConfigError,
     r"^data OwnItems: training sample 0 is of type ndarray; expected a torch tensor"),
    (lambda: OwnItems(Stream()), ConfigError,
     r"^data OwnItems: OwnItems.train_set \(Stream\) has no length; expected a map-style Dataset"),
], ids=["no_train_set", "empty", "shape", "images_0_255_tanh", "points_beyond_tanh", "sigmoid_below_0", "nan", "uint8",
        "no_label", "numpy", "no_length"])
def test_a_training_set_that_cannot_train_is_refused_in_one_line_after_setup(module, error_type, pattern):
    data = module()
    raises_one_line(error_type, pattern, lambda: data.setup("fit"))


def test_data_the_generator_reaches_is_accepted_and_checked_once():
    ring = Points(3 * torch.randn(50, 2))  # unbounded points beside an identity output
    ring.setup("fit")
    ring.setup("fit")  # Lightning sets up again in fit
    Points(torch.rand(50, 1, 4, 4) * 2 - 1, sample_shape=(1, 4, 4), generator_output="tanh", kind="image").setup("fit")
    Points(torch.rand(50, 2), generator_output="sigmoid").setup()
    Forgetful().setup("test")  # only training reads train_set
    items = Items(lambda i: (torch.zeros(1, 4, 4), -1))
    own = OwnItems(items)
    own.setup("fit")
    assert items.reads == 1  # a set read from its own __getitem__: its first sample only
    own.setup("fit")
    assert items.reads == 1  # not again for the same set


def test_a_setup_calling_its_base_class_s_is_checked_once_when_it_returns(data_dir, monkeypatch):
    checked = []
    check = GANDataModule.check_training_set
    monkeypatch.setattr(GANDataModule, "check_training_set", lambda self: checked.append(self.train_set) or check(self))
    data = DigitsIn255(root=str(data_dir))
    raises_one_line(DataError, r"^data digits yields values in \[0, 255\] \(8 training samples read\), outside the "
                               r"\[-1, 1\] its generator's output reaches \(data.generator_output=tanh\)",
                    lambda: data.setup("fit"))
    assert len(checked) == 1 and checked[0] is data.train_set  # the set it ended with, not the digits in between


class NoisyItems(Dataset):
    """Points with noise drawn at every read, from the global random state (as random flips or noise do)."""

    def __len__(self):
        return 50

    def __getitem__(self, index):
        import random

        import numpy as np

        noise = torch.randn(2) * 0.01 + float(np.random.rand()) * 0.001 + random.random() * 0.001
        return torch.full((2,), index / 50) + noise, -1


class NoisyPoints(Points):
    def setup(self, stage=None):
        self.train_set = NoisyItems()


def test_reading_samples_to_check_them_leaves_every_random_state_as_it_was():
    """The check reads samples after the run is seeded and before the networks are built: a __getitem__ that draws
    must not shift the numbers the run draws next (a review: the initial weights moved)."""
    import random

    import numpy as np

    def draws_after_setup():
        torch.manual_seed(0), np.random.seed(0), random.seed(0)
        NoisyPoints(torch.zeros(1, 2)).setup("fit")
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]

    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    expected = torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]
    assert draws_after_setup() == expected


class Loader:
    """A mixin that brings setup, before GANDataModule in the bases (a review: its setup went unchecked)."""

    def setup(self, stage=None):
        self.train_set = TensorDataset(torch.zeros(4, 3), torch.full((4,), -1))


class MixedIn(Loader, GANDataModule):
    def __init__(self):
        GANDataModule.__init__(self, (2,), generator_output="identity")


def make_plain_spiral(**options):
    """A factory function as a data config's _target_ (taking the config's options): what it returns is checked once
    built."""
    return PlainSpiral()


def test_a_setup_from_a_mixin_and_a_data_module_from_a_factory_are_checked():
    raises_one_line(ConfigError, r"^data MixedIn yields samples of shape \[3\] \(training sample 0\), but its config declares "
                                 r"sample_shape=\[2\]", lambda: MixedIn().setup("fit"))
    from gan.data import check_data_module_class

    check_data_module_class(make_plain_spiral)  # a function: left to what it returns
    raises_one_line(ConfigError, r"^data._target_=\S+PlainSpiral: PlainSpiral is a LightningDataModule but not a "
                                 r"gan.data.GANDataModule", lambda: check_data_module_class(make_plain_spiral()))


@pytest.mark.parametrize("make", [
    lambda root: DigitsDataModule(root=root),
    lambda root: Toy2DDataModule(layout="ring", num_samples=1000),
    lambda root: Toy2DDataModule(layout="grid", num_samples=1000),  # modes at +-4: its output is identity
], ids=["digits", "toy2d_ring", "toy2d_grid"])
def test_the_shipped_in_memory_data_passes_the_check(make, data_dir, monkeypatch):
    checked = []
    check = GANDataModule.check_training_set
    monkeypatch.setattr(GANDataModule, "check_training_set", lambda self: checked.append(self.name) or check(self))
    data = make(str(data_dir))
    data.setup("fit")
    assert checked == [data.name]


def test_images_in_0_255_stop_train_py_with_one_line_and_status_2(tmp_path, data_dir):
    """The audit's run, end to end: it diverged at step 8 with no word about the value range."""
    command = [sys.executable, "train.py", *tiny_overrides("dcgan", "digits", steps=2), f"data._target_={HERE}.DigitsIn255",
               f"paths.output_dir={tmp_path / 'run'}", f"paths.data_dir={data_dir}", f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WANDB_MODE": "offline"})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.search(r"(?m)^error: data digits yields values in \[0, 255\] \(8 training samples read\), outside the "
                     r"\[-1, 1\] its generator's output reaches \(data.generator_output=tanh\); expected samples scaled "
                     r"to \[-1, 1\]", done.stderr), done.stderr[-3000:]


# ------------------------------------------------------------------------------------------ metrics of one's own
class MeanX(Metric):
    """A metric of one's own on 2D points (the raw samples): the mean first coordinate; ``returns`` what compute gives."""

    name, extractor, needs_real = "mean_x_own", "raw", False
    directions = {"mean_x_own": True}
    returns = staticmethod(lambda fake: {"mean_x_own": float(fake["samples"][:, 0].mean())})

    def check_data(self, datamodule):
        pass

    def compute(self, fake, real, datamodule):
        return type(self).returns(fake)


class Replay:
    """A 'generator' that samples fixed points."""

    def sample(self, n, generator=None):
        return torch.randn(n, 2, generator=generator)


@pytest.fixture
def toy():
    data = Toy2DDataModule(layout="ring", num_samples=500)
    data.setup("fit")
    return data


@pytest.fixture
def own_metric(monkeypatch):
    """MeanX in the registry as the audit put it there (``METRICS[name] = cls``); ``own_metric(returns)`` makes its
    compute return ``returns(fake)``."""
    monkeypatch.setitem(METRICS, MeanX.name, MeanX)

    def returning(returns):
        monkeypatch.setattr(MeanX, "returns", staticmethod(returns))
        return MetricSuite([MeanX.name], num_samples=50, batch_size=50)

    return returning


def test_an_own_metric_that_returns_its_declared_keys_is_scored(own_metric, toy):
    values, _ = own_metric(MeanX.returns).evaluate_generator(Replay(), toy)
    assert set(values) == {"mean_x_own"} and isinstance(values["mean_x_own"], float)


@pytest.mark.parametrize("returns,pattern", [
    # was: logged as val/something_else, best.ckpt never written, exit 0
    (lambda fake: {"something_else": 1.0}, r"^metric mean_x_own \(MeanX\): compute returned the keys \['something_else'\], "
     r"but its directions declare \['mean_x_own'\]; expected every declared key among them \(the best checkpoint "
     r"monitors val/mean_x_own\), missing \['mean_x_own'\]$"),
    (lambda fake: fake["samples"][:, 0].mean(), r"^metric mean_x_own \(MeanX\): compute returned a Tensor; expected a "
     r"dict of numbers with the keys its directions declare, \['mean_x_own'\]$"),
    (lambda fake: 0.5, r"^metric mean_x_own \(MeanX\): compute returned a float; expected a dict of numbers"),
    (lambda fake: {"mean_x_own": fake["samples"][:, 0]}, r"^metric mean_x_own \(MeanX\): compute returned 'mean_x_own': "
     r"a tensor of shape \[50\]; expected a dict of numbers keyed by name \(a tensor's value: float\(x\)\)$"),
], ids=["other_key", "tensor", "float", "dict_of_tensor"])
def test_an_own_metric_s_compute_that_returns_what_cannot_be_logged_is_one_line(own_metric, toy, returns, pattern):
    suite = own_metric(returns)
    raises_one_line(ConfigError, pattern, lambda: suite.evaluate_generator(Replay(), toy))
    raises_one_line(ConfigError, pattern, lambda: suite.evaluate(iter([torch.randn(50, 2)]), toy))  # evaluate.py's folders


def test_an_own_metric_returning_other_keys_stops_training(own_metric, make_cfg, tmp_path):
    """The audit's run logged val/something_else and never wrote best.ckpt, with exit status 0."""
    own_metric(lambda fake: {"something_else": 1.0})
    from train import train

    cfg = make_cfg([*tiny_overrides("gan", "toy2d_grid", steps=4), f"+metrics.compute.{MeanX.name}={{}}",
                    "metrics.every_n_generator_steps=2", "metrics.num_samples=50"], output_dir=tmp_path / "run")
    raises_one_line(ConfigError, r"^metric mean_x_own \(MeanX\): compute returned the keys \['something_else'\], but "
                                 r"its directions declare \['mean_x_own'\]", lambda: train(cfg))


def test_register_metric_files_a_metric_under_its_name_and_checks_it(monkeypatch):
    from gan.metrics import register_metric

    monkeypatch.setattr("gan.metrics.registry.METRICS", dict(METRICS))  # registrations are undone after the test
    from gan.metrics import registry

    @register_metric
    class SlicedW1(Metric):
        name, extractor = "sliced_w1", "raw"
        directions = {"sliced_w1": False}

        def compute(self, fake, real, datamodule):
            return {"sliced_w1": 0.0}

    assert registry.METRICS["sliced_w1"] is SlicedW1 and registry.metric_class("sliced_w1") is SlicedW1
    assert register_metric(SlicedW1) is SlicedW1  # its module imported again: nothing changes

    def metric(**attributes):
        compute = attributes.pop("compute", lambda self, fake, real, datamodule: {})
        return type("Mine", (Metric,), {"name": "mine", "extractor": "raw", "directions": {"mine": True},
                                        "compute": compute, **attributes})

    for cls, pattern in [
        (dict, r"^register_metric\('dict'\): it is the class dict, not a subclass of gan.metrics.Metric$"),
        (metric(name="mine-2"), r"^register_metric\('Mine'\): its name is 'mine-2'; expected a class attribute name, "
                                r"letters, digits and _"),
        (metric(directions={}), r"^register_metric\('Mine'\): its directions are \{\}; expected a class attribute mapping "
                                r"each value compute returns that a checkpoint can monitor to whether larger is better"),
        (metric(directions={"mine": "max"}), r"^register_metric\('Mine'\): its directions are \{'mine': 'max'\}"),
        (metric(extractor="incepton"), r"^register_metric\('Mine'\): its extractor 'incepton' is not a feature "
                                       r"extractor; expected one of \[.*'inception'.*'raw'.*\]"),
        (metric(compute=Metric.compute), r"^register_metric\('Mine'\): it defines no compute\(fake, real, datamodule\)"),
        (metric(name="fid", directions={"fid": False}), r"^register_metric\(Mine\): the metric name 'fid' is taken by "
                                                        r"gan.metrics.registry.FID; expected a name of its own$"),
    ]:
        raises_one_line(ConfigError, pattern, lambda: register_metric(cls))
    assert "mine" not in registry.METRICS and registry.METRICS["fid"] is registry.FID

    # put in METRICS by hand, as the audit did: checked where a selection names it
    registry.METRICS["mine"] = metric(directions={})
    raises_one_line(ConfigError, r"^metric mine \(Mine\): its directions are \{\}", lambda: MetricSuite(["mine"]))
    registry.METRICS["other"] = metric()
    raises_one_line(ConfigError, r"^metric other \(Mine\): its name is 'mine'; expected 'other', the name METRICS holds "
                                 r"it under", lambda: MetricSuite(["other"]))
