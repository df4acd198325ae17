"""Pieces of one's own: the ``imports`` option, and what a ``_target_`` that does not import is said to be.

The one-line errors of the entry points (exit status 2) are checked in tests/test_errors.py; here the functions
behind them, and a metric of one's own through training and evaluate.py."""
from __future__ import annotations

import re
import sys
import textwrap
import uuid

import pytest
from omegaconf import OmegaConf

from evaluate import evaluate
from gan.metrics.registry import METRICS
from gan.utils.errors import ConfigError
from gan.utils.instantiate import build
from gan.utils.targets import import_modules, why_not_importable
from tests.conftest import tiny_overrides
from train import train


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package of one's own in a folder on the path, under a name no other test uses: ``write(module, source)``
    adds a module; the package, its modules and anything they registered are gone after the test."""
    name = f"own_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    metrics_before = dict(METRICS)

    def write(module: str, source: str) -> str:
        (tmp_path / name / f"{module}.py").write_text(textwrap.dedent(source))
        return f"{name}.{module}"

    write.name, write.folder = name, tmp_path
    yield write
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]
    METRICS.clear()
    METRICS.update(metrics_before)


def test_why_a_target_does_not_import_is_told_apart(package):
    losses = package("losses", """
        class SoftHinge:
            pass
        """)
    package("raises", """
        import math
        SCALE = math.log(0)
        """)
    package("imports_missing", "import a_module_nobody_has_xyz\n")
    package("syntax", "def broken(:\n")
    name = package.name
    assert why_not_importable(f"{losses}.SoftHinge") is None
    assert why_not_importable("gan.losses.HingeLoss") is None
    assert why_not_importable(f"{losses}.SoftHnge") == f"{losses} has no SoftHnge; did you mean SoftHinge?"
    assert why_not_importable(f"{losses}.Other") == f"{losses} has no Other"
    assert why_not_importable(f"{name}.nomodule.Loss") == f"there is no module {name}.nomodule"
    assert why_not_importable("no_such_package_xyz.losses.Loss") == "there is no module no_such_package_xyz here"
    raised = why_not_importable(f"{name}.raises.Loss")
    assert raised == (f"importing {name}.raises raised ValueError: math domain error "
                      f"({package.folder / name / 'raises.py'}, line 3)")
    assert why_not_importable(f"{name}.imports_missing.Loss") == (
        f"importing {name}.imports_missing raised ModuleNotFoundError: No module named 'a_module_nobody_has_xyz' "
        f"({package.folder / name / 'imports_missing.py'}, line 1)")
    assert why_not_importable(f"{name}.syntax.Loss").startswith(
        f"importing {name}.syntax raised SyntaxError: ") and "syntax.py, line 1)" in why_not_importable(f"{name}.syntax.Loss")
    assert why_not_importable("not a path") == "'not a path' is not a dotted path to a class or function (e.g. mypkg.losses.MyLoss)"
    # a module named where a module is expected
    assert why_not_importable(f"{name}.nomodule", names_a_module=True) == f"there is no module {name}.nomodule"


def test_imports_takes_modules_and_refuses_what_does_not_import(package):
    registering = package("registering", """
        from gan.metrics.registry import METRICS, Metric

        class Registered(Metric):
            name = "registered_by_import"
            extractor = "raw"
            directions = {"registered_by_import": True}
        METRICS[Registered.name] = Registered
        """)
    assert "registered_by_import" not in METRICS
    import_modules(OmegaConf.create([registering]))
    assert "registered_by_import" in METRICS
    import_modules(registering)  # one module, as a string
    import_modules(None)
    import_modules([])
    with pytest.raises(ConfigError, match=rf"^imports: module {package.name}.nothere does not import: there is no module "
                                          rf"{package.name}.nothere; expected modules next to train.py, installed, or in a "
                                          r"folder on PYTHONPATH$"):
        import_modules([registering, f"{package.name}.nothere"])
    with pytest.raises(ConfigError, match=rf"^imports: module {registering}.Registered does not import: "
                                          rf"{registering}.Registered is not a module;"):
        import_modules([f"{registering}.Registered"])  # a class, not a module
    with pytest.raises(ConfigError, match=r"^imports=\[1, 2\]: expected a list of module names, e.g. imports=\[mypkg.metrics\]$"):
        import_modules([1, 2])


@pytest.mark.parametrize("signature,needs", [
    ("a", "the option a; expected callbacks.mine.a=<value>"),
    ("a, b", "the options a, b; expected callbacks.mine.a=<value> callbacks.mine.b=<value>"),
    ("a, b, c", "the options a, b, c; expected callbacks.mine.a=<value> callbacks.mine.b=<value> callbacks.mine.c=<value>"),
    ("*, k", "the option k; expected callbacks.mine.k=<value>"),
])
def test_a_constructor_without_an_option_it_requires_is_one_line(package, signature, needs):
    module = package("needs", f"""
        class Mine:
            def __init__(self, {signature}):
                pass
        """)
    node = OmegaConf.create({"callbacks": {"mine": {"_target_": f"{module}.Mine"}}})
    with pytest.raises(ConfigError, match=rf"^callbacks.mine: Mine needs {re.escape(needs)}$"):
        build(node.callbacks.mine)


def test_a_type_error_raised_inside_a_constructor_keeps_its_traceback(package):
    """Only Python's refusal of the call is a missing option; a TypeError of the constructor's own is a bug."""
    from hydra.errors import InstantiationException

    module = package("buggy", """
        def helper(x, y):
            return x + y

        class Helper:
            def __init__(self, x):
                pass

        class Buggy:
            def __init__(self):
                helper(1)

        class AlsoBuggy:
            def __init__(self):
                Helper()

        class BuildsATypo:
            def __init__(self):
                from hydra.utils import instantiate
                instantiate({"_target_": "torch.nn.Sofplus"})  # a target of its own code, misspelt
        """)
    package("bases", """
        class Base:
            def __init__(self, sample_shape):
                pass
        """)
    # named as its base class, whose __init__ it calls without the option the config sets (a review)
    same = package("same_name", f"""
        from {package.name} import bases

        class Base(bases.Base):
            def __init__(self, sample_shape):
                bases.Base.__init__(self)
        """)
    node = OmegaConf.create({"callbacks": {"mine": {"_target_": f"{module}.Buggy"}, "other": {"_target_": f"{module}.AlsoBuggy"},
                                           "same": {"_target_": f"{same}.Base", "sample_shape": [2]},
                                           "typo": {"_target_": f"{module}.BuildsATypo"}}})
    with pytest.raises(InstantiationException, match="helper\\(\\) missing 1 required positional argument: 'y'"):
        build(node.callbacks.mine)
    with pytest.raises(InstantiationException, match="Helper.__init__\\(\\) missing 1 required positional argument: 'x'"):
        build(node.callbacks.other)
    with pytest.raises(InstantiationException, match="Base.__init__\\(\\) missing 1 required positional argument: "
                                                     "'sample_shape'"):
        build(node.callbacks.same)
    with pytest.raises(InstantiationException, match="Error locating target 'torch.nn.Sofplus'"):  # not said as the node's
        build(node.callbacks.typo)


def test_a_module_that_sets_a_layer_before_its_base_init_is_one_line(package):
    """torch's refusal of an ``nn.Module`` attribute before ``super().__init__()``, in the target's own ``__init__``;
    the same bug in a module the target builds keeps its traceback (the message would blame the wrong class)."""
    from hydra.errors import InstantiationException

    module = package("early", """
        import torch

        class Early(torch.nn.Module):
            def __init__(self, width: int = 2):
                self.layer = torch.nn.Linear(width, 1)
                super().__init__()

        class BuildsEarly(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = Early()
        """)
    node = OmegaConf.create({"model": {"generator": {"_target_": f"{module}.Early"},
                                       "discriminator": {"_target_": f"{module}.BuildsEarly"}}})
    with pytest.raises(ConfigError, match=rf"^model.generator._target_={module}.Early: its __init__ sets a layer or "
                                          r"parameter before it calls super\(\).__init__\(\); expected "
                                          r"super\(\).__init__\(...\) first, as every torch nn.Module's __init__ "
                                          r"\(torch: cannot assign module before Module.__init__\(\) call\)$"):
        build(node.model.generator)
    with pytest.raises(InstantiationException, match="cannot assign module before Module.__init__"):
        build(node.model.discriminator)


def test_a_callback_method_named_like_a_hook_that_nothing_calls_is_said(package, caplog):
    """Lightning calls the hooks it knows: a misspelt one never ran, without a word."""
    import lightning.pytorch as pl

    from gan.module import GAN_CALLBACK_HOOKS
    from gan.utils.instantiate import instantiate_group

    module = package("hooks", """
        import lightning.pytorch as pl

        class Mine(pl.Callback):
            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                pass

            def on_gan_iteration_end(self, trainer, module):
                pass

            def on_train_batch_ends(self, trainer, module, outputs, batch, batch_idx):
                pass

            def on_gan_iteration(self, trainer, module):
                pass

            def on_my_own(self):
                pass
        """)
    group = OmegaConf.create({"callbacks": {"mine": {"_target_": f"{module}.Mine"}}}).callbacks
    with caplog.at_level("WARNING", logger="gan"):
        (built,) = instantiate_group(group, kind=pl.Callback, hooks=GAN_CALLBACK_HOOKS)
    assert type(built).__name__ == "Mine"
    assert [record.getMessage() for record in caplog.records] == [
        "callbacks.mine: Mine.on_gan_iteration is no hook, so nothing calls it; did you mean on_gan_iteration_end?",
        "callbacks.mine: Mine.on_my_own is no hook, so nothing calls it (the hooks: lightning.pytorch.Callback's and "
        "on_gan_iteration_end)",
        "callbacks.mine: Mine.on_train_batch_ends is no hook, so nothing calls it; did you mean on_train_batch_end?"]


def test_a_logger_of_ones_own_must_be_a_lightning_logger():
    from lightning.pytorch.loggers import Logger

    from gan.utils.instantiate import instantiate_group

    group = OmegaConf.create({"logger": {"mine": {"_target_": "tests.own_parts.parts.NotACallback"}}}).logger
    with pytest.raises(ConfigError, match=r"^logger.mine._target_=tests.own_parts.parts.NotACallback: NotACallback is not "
                                          r"a lightning.pytorch.loggers.Logger; expected a subclass of it$"):
        instantiate_group(group, kind=Logger)
    assert len(instantiate_group(group)) == 1  # no kind: anything is taken


def test_the_shipped_callbacks_define_no_method_named_like_a_hook_that_nothing_calls(make_cfg, caplog):
    import lightning.pytorch as pl

    from gan.module import GAN_CALLBACK_HOOKS
    from gan.utils.instantiate import instantiate_group

    cfg = make_cfg(tiny_overrides("dcgan", "digits"))
    with caplog.at_level("WARNING", logger="gan"):
        built = instantiate_group(cfg.callbacks, kind=pl.Callback, hooks=GAN_CALLBACK_HOOKS)
    assert len(built) >= 5 and not [r for r in caplog.records if "is no hook" in r.getMessage()]


MEAN_X = """
    from gan.metrics import Metric, register_metric


    @register_metric
    class MeanX(Metric):
        '''The mean first coordinate of the fakes: a metric of one's own on 2D points.'''
        name = "mean_x"
        extractor = "raw"
        directions = {"mean_x": True}
        needs_real = False

        def check_data(self, datamodule):
            pass

        def compute(self, fake, real, datamodule):
            return {"mean_x": float(fake["samples"][:, 0].double().mean())}
    """


def test_a_metric_of_ones_own_is_logged_in_training_and_scored_by_evaluate_py(package, make_cfg, tmp_path):
    """``imports=[mypkg.metric]`` registers it before the run's selection is checked; evaluate.py imports the run's
    modules too, and where they are not on the path it says so in one line."""
    module = package("metric", MEAN_X)
    overrides = [*tiny_overrides("gan", "toy2d_grid", steps=4), f"imports=[{module}]", "+metrics.compute.mean_x={}",
                 "metrics.every_n_generator_steps=2", "metrics.num_samples=200"]
    metrics, _ = train(make_cfg(overrides, output_dir=tmp_path / "run"))
    assert "val/mean_x" in metrics and metrics["val/mean_x"] == metrics["val/mean_x"]  # logged, and not NaN
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"

    def forget_the_package():  # as a new process starts
        for name in [m for m in sys.modules if m.startswith(package.name)]:
            del sys.modules[name]
        del METRICS["mean_x"]

    forget_the_package()
    evaluated = evaluate(make_cfg([f"ckpt_path={last}", "num_samples=200", "interpolation.rows=0", "nearest.rows=0"],
                                  config_name="evaluate", output_dir=tmp_path / "eval"))
    # no metrics= given: the run's own selection, same protocol and latent codes: the value training logged
    assert evaluated["values"]["mean_x"] == pytest.approx(metrics["val/mean_x"], rel=1e-9)

    # another process, where the package is not on the path
    sys.path.remove(str(package.folder))
    forget_the_package()
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(last))}: its run's imports: module {module} does not import: "
                                          rf"there is no module {package.name} here; expected modules next to train.py"):
        evaluate(make_cfg([f"ckpt_path={last}"], config_name="evaluate", output_dir=tmp_path / "eval2"))
