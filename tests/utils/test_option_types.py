"""Options of the wrong type are named before anything is built, and no shipped config is refused (every model x
data: tests/test_configs.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import pytest
import torch
from omegaconf import OmegaConf

from gan.metrics.registry import METRICS, MetricSuite
from gan.utils.errors import ConfigError
from gan.utils.option_types import check_option_types, check_options, expectation, parameter_annotations
from tests.conftest import CONF_DIR


class Base:
    def __init__(self, depth: int = 2, rate: float = 0.1):
        self.depth, self.rate = depth, rate


class Child(Base):
    """Passes ``**kwargs`` on: the base's annotations apply to them."""

    def __init__(self, name: str = "x", betas: tuple[float, float] = (0.5, 0.9), sizes: Sequence[int] = (1,),
                 mode: Literal["a", "b"] = "a", step: int | str = "auto", flag: bool = False,
                 lr: Union[float, torch.Tensor] = 1e-3, limit: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)


TARGET = f"{__name__}.Child"


@pytest.mark.parametrize("annotation,value,expected", [
    (int, 3, None), (int, 3.0, None), (int, 2.5, "an integer"), (int, "abc", "an integer"), (int, [1], "an integer"),
    (float, 1, None), (float, 0.5, None), (float, "abc", "a number"), (float, {"a": 1}, "a number"),
    (bool, True, None), (bool, "maybe", "true or false"),
    (str, "abc", None), (str, 3, None), (str, [1], "a string"),
    (Optional[int], None, None), (Optional[int], "abc", "an integer"),
    (Union[float, torch.Tensor], "abc", "a number"),  # torch's optimizers: a config holds no tensors
    (Union[int, str], "abc", None),  # a union with str: the target judges the string
    (Union[int, float], "abc", "a number"), (Union[int, float], [1], "a number"),
    (Literal["a", "b"], "a", None), (Literal["a", "b"], "c", "one of 'a', 'b'"),
    (Optional[Union[Literal[16, 32], Literal["16-mixed"], Literal["16"]]], "16-mixed", None),
    (Optional[Union[Literal[16, 32], Literal["16-mixed"], Literal["16"]]], "fp12", "one of 16, 32, '16-mixed', '16'"),
    (Union[int, Literal["auto"]], "many", "an integer or one of 'auto'"),
    (tuple[float, float], [0.5, 0.9], None), (tuple[float, float], [0.5], "a list of 2 numbers"),
    (tuple[float, float], [0.5, "x"], "a list of 2 numbers"), (tuple[float, float], 0.5, "a list of 2 numbers"),
    (tuple[int, ...], [1, 2, 3], None), (tuple[int, ...], [1, 2.5], "a list of integers"),
    (Sequence[int], [1, 2], None), (Sequence[int], ["a"], "a list of integers"),
    (Sequence[int], 3, "a list of integers"),  # "'int' object is not iterable" inside a network (an audit)
    (Union[int, Sequence[int]], 3, None),  # code that takes one value says so
    (Sequence[float], "abc", "a list of numbers"), (Sequence[str], "abc", None),  # a string is a sequence of strings
    (list[float], [0.1, 2], None),
    (torch.nn.Module, "anything", None),  # a class: the target's business
    # null where the parameter takes none: int(None) deep in a constructor, or torch's default in silence (an audit)
    (int, None, "an integer, not null"), (bool, None, "true or false, not null"), (Optional[int], None, None),
    (Union[float, torch.Tensor], None, "a number, not null"), (tuple[float, float], None, "a list of 2 numbers, not null"),
    (Literal["a", "b"], None, "one of 'a', 'b', not null"), (Literal["a", None], None, None),
    (torch.nn.Module, None, None),
    (bool, 2, "true or false"), (bool, 1, "true or false"), (bool, False, None),  # 2 was taken as true (an audit)
])
def test_expectation_against_the_annotation(annotation, value, expected):
    assert expectation(annotation, value) == expected


def test_a_parameter_whose_default_is_none_takes_null():
    class Sloppy:
        def __init__(self, size: int = None, depth: int = 2):
            pass

    annotations = parameter_annotations(Sloppy)
    assert expectation(annotations["size"], None) is None and expectation(annotations["depth"], None) == "an integer, not null"


def test_annotations_are_resolved_through_kwargs_to_the_base_class():
    annotations = parameter_annotations(TARGET)
    assert annotations["depth"] is int and annotations["rate"] is float  # Base's, reached through **kwargs
    assert annotations["betas"] == tuple[float, float]
    assert parameter_annotations("no.such.module.Target") == {}


@pytest.mark.parametrize("option,value,message", [
    ("depth", "abc", r"^model\.net\.depth=abc: expected an integer \(Child's depth\)$"),
    ("rate", [1, 2], r"^model\.net\.rate=\[1, 2\]: expected a number \(Child's rate\)$"),
    ("betas", [0.5], r"^model\.net\.betas=\[0\.5\]: expected a list of 2 numbers \(Child's betas\)$"),
    ("mode", "c", r"^model\.net\.mode=c: expected one of 'a', 'b' \(Child's mode\)$"),
    ("lr", "fast", r"^model\.net\.lr=fast: expected a number \(Child's lr\)$"),
    ("lr", None, r"^model\.net\.lr=null: expected a number, not null \(Child's lr\)$"),
    # Hydra's own check was a TypeError traceback ("_partial_ flag must be a bool") (an audit)
    ("_partial_", "maybe", r"^model\.net\._partial_=maybe: expected true or false$"),
    ("_partial_", 1, r"^model\.net\._partial_=1: expected true or false$"),
])
def test_a_wrong_option_is_named_with_its_full_key(option, value, message):
    cfg = OmegaConf.create({"model": {"net": {"_target_": TARGET, option: value}}})
    with pytest.raises(ConfigError, match=message):
        check_option_types(cfg)


def test_options_that_fit_pass_and_nested_nodes_are_checked():
    fine = {"_target_": TARGET, "_partial_": True, "depth": 3, "rate": 1, "betas": [0.5, 0.9], "sizes": [1, 2],
            "step": "auto", "flag": True, "lr": 2e-4, "limit": None, "name": "n"}
    check_option_types(OmegaConf.create({"a": fine, "b": [fine, 3]}))
    # an interpolation is checked as its value; inside a list of nodes too
    cfg = OmegaConf.create({"size": "abc", "nets": [{"_target_": TARGET, "depth": "${size}"}]})
    with pytest.raises(ConfigError, match=r"^nets\[0\]\.depth=abc: expected an integer"):
        check_option_types(cfg)


def test_an_option_no_parameter_takes_is_named_unless_kwargs_reach_anything():
    """Child passes **kwargs to Base, whose __init__ has none: the two signatures together are what it takes."""
    from gan.utils.option_types import accepted_options

    assert accepted_options(TARGET) == {"name", "betas", "sizes", "mode", "step", "flag", "lr", "limit", "depth", "rate"}
    with pytest.raises(ConfigError, match=r"^model\.net: Child takes no option colour, size \(a TypeError when it is built\)$"):
        check_option_types(OmegaConf.create({"model": {"net": {"_target_": TARGET, "depth": 3, "size": 1, "colour": "red"}}}))
    check_option_types(OmegaConf.create({"model": {"net": {"_target_": TARGET, "size": None}}}))  # null: left out, not passed
    # a function, a class whose **kwargs reach object, a target that cannot be located: anything may be taken
    assert accepted_options(f"{__name__}.expectation") is None and accepted_options("no.such.Target") is None

    class Open:
        def __init__(self, **kwargs):
            pass

    assert accepted_options(Open) is None


def test_a_metric_option_of_the_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"^metrics\.compute\.kid\.subset_size=abc: expected an integer \(KID's subset_size\)$"):
        MetricSuite(compute={"kid": {"subset_size": "abc"}})
    with pytest.raises(ConfigError, match=r"^metrics\.num_samples=\[1, 2\]: expected an integer \(MetricSuite's num_samples\)$"):
        MetricSuite.from_config(OmegaConf.create({"compute": ["mode_coverage"], "num_samples": [1, 2]}))


@pytest.mark.parametrize("compute, message", [
    # each gave NaN with status 0, or 0 was taken for the default (an audit), or a traceback inside torch
    ({"kid": {"subsets": 0}}, r"^metrics\.compute\.kid\.subsets=0: expected an integer >= 1 \(the random subsets KID"),
    ({"kid": {"subset_size": 1}}, r"^metrics\.compute\.kid\.subset_size=1: expected an integer >= 2 \(the samples of a"),
    ({"prc": {"neighborhood": 0}}, r"^metrics\.compute\.prc\.neighborhood=0: expected an integer >= 1 \(the k of the "
                                   r"k-nearest-neighbour balls\) or null for 3$"),
    ({"density_coverage": {"neighborhood": -1}}, r"^metrics\.compute\.density_coverage\.neighborhood=-1: expected an integer >= 1"),
])
def test_a_metric_option_out_of_range_is_named(compute, message):
    with pytest.raises(ConfigError, match=message):
        MetricSuite(compute=compute)


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "metrics").glob("*.yaml")))
def test_no_shipped_metrics_config_is_refused(make_cfg, name):
    node = make_cfg([f"metrics={name}"]).metrics
    compute = node.get("compute") or {}
    for metric, options in (compute.items() if hasattr(compute, "items") else ((m, None) for m in compute)):
        check_options(options, METRICS[metric], f"metrics.compute.{metric}")
    check_options({key: node[key] for key in MetricSuite.SETTINGS if key in node and key != "compute"}, MetricSuite, "metrics")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("override", [
    *(f"{group}={name}" for group in ("loss", "optimizer", "augment", "logger", "arch", "trainer", "callbacks")
      for name in group_options(group)),
    *(f"experiment={name}" for name in group_options("experiment")),
    *(f"experiment=ablation/{name}" for name in group_options("experiment/ablation")),
])
def test_no_shipped_group_option_is_refused(make_cfg, override):
    # with the model each is for: pacgan is gan's toy baseline; arch=resnet is for the image variants, and under the
    # default model=r3gan the digits preset sets the DCGAN networks over it (refused, test_errors.py)
    model = {"experiment=pacgan": ["model=gan"], "arch=resnet": ["model=dcgan"]}.get(override, [])
    check_option_types(make_cfg([override, *model]))
    if override != "arch=resnet":  # image networks: refused on 2D points by the networks themselves
        check_option_types(make_cfg([override, *model, "data=toy2d_grid"]))


def test_the_group_lists_are_not_empty():
    assert Path(CONF_DIR / "experiment" / "ablation").is_dir() and len(group_options("optimizer")) >= 5
