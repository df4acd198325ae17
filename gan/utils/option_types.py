"""Options of the wrong type, caught before anything is built.

Hydra passes an override as it parses it: ``model.generator.width=abc`` reaches the generator as the string
``'abc'``, ``optimizer.generator.betas=[0.5]`` reaches Adam as a one-element list. The targets then fail far
from the option (``int('abc')`` inside a layer, Adam's ``betas[1]`` in ``configure_optimizers``) with a
traceback that names neither. :func:`check_option_types` compares every option of a ``_target_`` node with
the type annotation of the parameter it is passed to and names the option and what was expected.

It only refuses what the annotation rules out for certain: an option the target does not take, null where the
annotation has no None, anything but true/false for a bool, a string or a list where a number is expected, a
fractional number for an integer, one number where a list goes, a list of the wrong length for a fixed-size
tuple, a value outside a ``Literal``, a list or mapping for a union with ``str``. Whatever it cannot judge (classes,
callables, mappings, a number or string for a union with ``str``, annotations it cannot resolve) is left to the
target, which checks ranges and meanings itself.
"""
from __future__ import annotations

import builtins
import collections.abc as abc
import inspect
import sys
import types
import typing
from typing import Any, Literal, Optional, Union

from omegaconf import DictConfig, ListConfig, OmegaConf

from gan.utils.errors import ConfigError

#: Hydra's instantiation keys: not options of the target
HYDRA_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
SEQUENCES = (list, tuple, abc.Sequence, abc.MutableSequence, typing.Sequence, typing.List, typing.Tuple)


def check_option_types(node: Any) -> None:
    """Raise a :class:`ConfigError` for the first option of ``node``, or of any node inside it, whose value its
    ``_target_``'s parameter annotation rules out (``model.generator.width=abc: expected an integer
    (DCGANGenerator's width)``). Nodes without a ``_target_`` are looked into, not checked."""
    if isinstance(node, ListConfig):
        for item in node:
            check_option_types(item)
        return
    if not isinstance(node, DictConfig):
        return
    if "_partial_" in node and not isinstance(node.get("_partial_"), bool):  # Hydra's TypeError, a traceback
        raise ConfigError(f"{node._get_full_key('_partial_')}={node.get('_partial_')}: expected true or false")
    target = node.get("_target_") if "_target_" in node else None
    annotations = parameter_annotations(target) if target is not None else {}
    accepted = accepted_options(target) if target is not None else None
    if accepted is not None:
        # a null option is left out where the framework builds the target (an optimizer's unset momentum)
        unknown = sorted(str(key) for key in node.keys() if isinstance(key, str) and key not in HYDRA_KEYS
                         and key not in accepted and not OmegaConf.is_missing(node, key) and node._get_node(key)._value() is not None)
        if unknown:
            import difflib

            where = node._get_full_key(None) or "the config"
            close = difflib.get_close_matches(unknown[0], sorted(accepted), n=1, cutoff=0.75)
            # a typo (widht) got only the hint about network families (an audit); an option of another family may
            # look like one of this family's (negative_slope, r3gan's vector_negative_slope), so a network keeps both
            hint = f"; did you mean {close[0]}?" if close else ""
            if where in ("model.generator", "model.discriminator"):
                # the option may come from the model's own networks (model=gan's MLP under arch=resnet) or from a
                # preset's (arch=resnet under r3gan's digits preset): "add presets=none" alone was advised even with
                # presets=none given (a README walk-through)
                hint += ("; options of another network family stay when a later config swaps the class: model=..., "
                         "arch=... and the per-data preset set the networks in that order (presets=none leaves the "
                         "preset's out)")
            raise ConfigError(f"{where}: {str(target).rsplit('.', 1)[-1]} takes no option {', '.join(unknown)} (a "
                              f"TypeError when it is built){hint}")
    for key in node.keys():
        if not isinstance(key, str) or key in HYDRA_KEYS or OmegaConf.is_missing(node, key):
            continue
        try:
            value = node[key]
        except Exception:  # an interpolation that does not resolve: OmegaConf reports it where it is read
            continue
        if isinstance(value, (DictConfig, ListConfig)):
            check_option_types(value)
        if key in annotations:
            check_option(node._get_full_key(key), value, annotations[key], f"{str(target).rsplit('.', 1)[-1]}'s {key}")


def check_options(options: Any, target: Any, prefix: str) -> None:
    """:func:`check_option_types` for the options of a mapping that is not a ``_target_`` node but is passed to
    ``target`` as keyword arguments (a metric's options: ``check_options(options, KID, "metrics.compute.kid")``)."""
    annotations = parameter_annotations(target)
    for key, value in (options or {}).items():
        if key in annotations:
            check_option(f"{prefix}.{key}", value, annotations[key], f"{target.__name__}'s {key}")


def check_option(full_key: str, value: Any, annotation: Any, parameter: str) -> None:
    """Raise a :class:`ConfigError` naming ``full_key=value`` when ``annotation`` rules the value out."""
    plain = OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    expected = expectation(annotation, plain)
    if expected is not None:
        shown = "null" if plain is None else plain if not isinstance(plain, str) else plain or "''"
        raise ConfigError(f"{full_key}={shown}: expected {expected} ({parameter})")


def parameter_annotations(target: Any) -> dict[str, Any]:
    """The resolved type annotation of each keyword parameter of ``target`` (a dotted path or a callable); for a
    class, of its ``__init__`` and of the base classes' ``__init__`` it passes ``**kwargs`` on to. Empty when the
    target cannot be located; a parameter whose annotation does not resolve is left out."""
    if isinstance(target, str):
        from hydra._internal.utils import _locate

        try:
            target = _locate(target)
        except Exception:  # Hydra names a target it cannot import when it instantiates
            return {}
    functions = [klass.__dict__["__init__"] for klass in target.__mro__ if "__init__" in klass.__dict__ and klass is not object] \
        if inspect.isclass(target) else [target]
    annotations: dict[str, Any] = {}
    for function in functions:
        function = inspect.unwrap(function)
        try:
            parameters = inspect.signature(function).parameters
        except (TypeError, ValueError):  # a builtin without a signature
            break
        namespace = None  # built once per function, when a string annotation needs it
        for name, parameter in parameters.items():
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD) or name in annotations:
                continue
            if isinstance(parameter.annotation, str) and namespace is None:
                namespace = annotation_namespace(function)
            resolved = resolve(parameter.annotation, namespace)
            if resolved is not None:
                # a default of None takes null whatever the annotation says (``embedding_dim: int = None``)
                annotations[name] = Optional[resolved] if parameter.default is None else resolved
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            break  # the base classes' parameters are reachable only through **kwargs
    return annotations


def accepted_options(target: Any) -> set[str] | None:
    """The keyword parameters ``target`` takes (for a class, its ``__init__``'s and those of the base classes it
    passes ``**kwargs`` on to); None when it takes any keyword (a ``**kwargs`` that reaches ``object`` or a
    function) or cannot be located or inspected, so nothing is refused that might be accepted."""
    if isinstance(target, str):
        from hydra._internal.utils import _locate

        try:
            target = _locate(target)
        except Exception:
            return None
    if not inspect.isclass(target):
        return None  # a function (a partial's target among them): left to the call
    names: set[str] = set()
    for klass in target.__mro__:
        if klass is object:  # no class defines __init__ (RelativisticLoss): object's takes no option, unless a
            # __new__ takes them (timedelta, Fraction, NamedTuples, C types; Path before Python 3.12); after a
            # **kwargs, one that may keep them
            return set() if not names and target.__new__ is object.__new__ else None
        if "__init__" not in klass.__dict__:
            continue
        try:
            parameters = inspect.signature(inspect.unwrap(klass.__dict__["__init__"])).parameters
        except (TypeError, ValueError):
            return None
        names |= {name for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return names - {"self"}
    return None  # **kwargs all the way up: anything may be taken


def annotation_namespace(function: Any) -> dict[str, Any]:
    """The names a string annotation of ``function`` may use: builtins, ``typing`` and its module's globals."""
    module = sys.modules.get(getattr(function, "__module__", ""), None)
    return {**vars(builtins), **typing.__dict__, **(vars(module) if module is not None else {})}


def resolve(annotation: Any, namespace: dict[str, Any] | None) -> Any:
    """``annotation`` as a type (string annotations, ``from __future__ import annotations``, evaluated in
    ``namespace``, the function's); None when there is none or it does not evaluate (a name imported for type
    checking only)."""
    if annotation is inspect.Parameter.empty:
        return None
    if not isinstance(annotation, str):
        return annotation
    try:
        return eval(annotation, namespace)  # noqa: S307 - the annotations of installed code, as typing.get_type_hints does
    except Exception:
        return None


def expectation(annotation: Any, value: Any) -> str | None:
    """What ``annotation`` expects, in words, when ``value`` (plain Python: a config's lists as lists) certainly
    does not fit it; None when it fits or when this cannot tell."""
    if annotation is Any or isinstance(annotation, typing.TypeVar):
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if value is None:  # null where the parameter takes none: int(None) deep in a constructor, or torch's default
        # silently in an optimizer (an audit: lr=null trained at 0.01 instead of 5e-5)
        if origin in (Union, types.UnionType) and type(None) in args or origin is Literal and None in args:
            return None
        wanted = words_for(annotation)
        return None if wanted is None else f"{wanted}, not null"
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None) and not is_tensor_type(a)]  # a config holds no tensors
        if not members:
            return None
        choices = [choice for member in members if typing.get_origin(member) is Literal for choice in typing.get_args(member)]
        others = [member for member in members if typing.get_origin(member) is not Literal]
        if any(expectation(member, value) is None for member in others) or (choices and value in choices):
            return None
        return words_for(annotation)
    if origin is Literal:
        return None if value in args else one_of(args)
    if annotation is bool:  # 2 (or 1) was taken as true: a bool's value is true or false
        return None if isinstance(value, bool) else "true or false"
    if annotation is int:
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return None
        return "an integer" if isinstance(value, (str, float, list, dict)) else None
    if annotation is float:
        return "a number" if isinstance(value, (str, list, dict)) else None
    if annotation is str:
        return "a string" if isinstance(value, (list, dict)) else None
    if origin in SEQUENCES or annotation in SEQUENCES:
        return sequence_expectation(origin or annotation, args, value)
    return None


def words_for(annotation: Any) -> str | None:
    """What a value of ``annotation`` is, in words (``an integer``, ``a list of 2 numbers``); None for a type no
    config value is judged against (a class, Any)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in simple:
        return simple[annotation]
    if origin is Literal:
        return one_of(args)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None) and not is_tensor_type(a)]  # a config holds no tensors
        # the values of every Literal member, named once (Lightning's precision: three Literals of ints and strings)
        choices = [choice for member in members if typing.get_origin(member) is Literal for choice in typing.get_args(member)]
        words = [words_for(member) for member in members if typing.get_origin(member) is not Literal]
        if not (words or choices) or None in words:
            return None
        if "a number" in words:  # int | float: "an integer or a number" says less than "a number"
            words = [w for w in words if w != "an integer"]
        return " or ".join(dict.fromkeys([*words, *([one_of(choices)] if choices else [])]))
    if origin in SEQUENCES or annotation in SEQUENCES:
        return list_words(origin, args)
    return None


def list_words(origin: Any, args: tuple) -> str:
    """``a list of 2 numbers`` (a fixed-size tuple), ``a list of integers``, ``a list of values``."""
    fixed = origin in (tuple, typing.Tuple) and args and args[-1] is not Ellipsis
    elements = element_words(args[0]) if args else "values"
    return f"a list of {len(args)} {elements}" if fixed else f"a list of {elements}"


def one_of(choices) -> str:
    return "one of " + ", ".join(dict.fromkeys(map(repr, choices)))


def sequence_expectation(origin: Any, args: tuple, value: Any) -> str | None:
    """For ``tuple[float, float]``, ``tuple[int, ...]``, ``Sequence[int]``, ``list[float]``: a fixed-size tuple
    needs a list of that length; every element is checked against its type. A string is refused where the
    elements cannot be strings (``grid_values=abc``); another value that is not a list only for a fixed-size
    tuple (``betas=0.5``) and a number for any list of numbers (``hidden=3``)."""
    fixed = origin in (tuple, typing.Tuple) and args and args[-1] is not Ellipsis
    wanted = list_words(origin, args)
    if isinstance(value, str) and args and expectation(args[0], value) is not None:
        return wanted
    if fixed:
        if not isinstance(value, (list, tuple)):
            return wanted if isinstance(value, (int, float, str)) else None
        if len(value) != len(args) or any(expectation(t, v) is not None for t, v in zip(args, value)):
            return wanted
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and args:
        # one number where a list of them goes: "'int' object is not iterable" inside the network (an audit);
        # code that takes one value says so in its annotation (``int | Sequence[int]``, a union judged member by member)
        return wanted
    if not args or not isinstance(value, (list, tuple)):
        return None
    if any(expectation(args[0], element) is not None for element in value):
        return wanted
    return None


def element_words(annotation: Any) -> str:
    """``numbers``, ``integers`` or ``values``: the elements of a list, in words."""
    members = [a for a in typing.get_args(annotation) if not is_tensor_type(a)] or [annotation]
    if all(m is int for m in members):
        return "integers"
    if all(m in (int, float) for m in members):
        return "numbers"
    return "values"


def is_tensor_type(annotation: Any) -> bool:
    """torch.Tensor (optimizers take a tensor learning rate): a type no config value can be."""
    return inspect.isclass(annotation) and annotation.__name__ == "Tensor" and annotation.__module__.startswith("torch")
