"""On-disk cache of real-data features, keyed by everything that changes them.

The key is the JSON of (cache format, extractor protocol incl. weights, data identity and content, the code
that makes the features, sample count, seed); the file name is its hash and the key is stored inside and
compared on load, so a changed protocol, and an edited or upgraded extractor or data loader, never reads stale
features. Files are written under a temporary name and renamed, so concurrent
runs (multirun jobs) never read half a file; under DDP only rank 0 reads and writes them.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gan.utils.files import atomic_write
from gan.utils.provenance import distribution_version, files_sha256

log = logging.getLogger("gan")

#: 2: real class labels stored beside the features; the data's content and split in the key
#: 3: the code that makes the features in the key (``feature_code``)
CACHE_FORMAT = 3

#: the modules of this package that turn samples into features (their edits change cached features)
EXTRACTION_MODULES = ("features.py", "digit_classifier.py", "dinov2.py")
#: the libraries whose code does (torch-fidelity's networks, torch's kernels, Pillow's resize for clean resizing)
EXTRACTION_LIBRARIES = ("torch", "torchvision", "torch-fidelity", "pillow", "numpy")


def cache_key(**parts: Any) -> str:
    return json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)


#: the top-level packages of base classes whose modules are not hashed: Lightning's data module holds no loading code
LIBRARY_BASES = ("lightning", "pytorch_lightning", "builtins")


def module_code_files(module) -> list[Path]:
    """Every module of the package ``module`` is in (a loader's package shares its transforms), or ``module``'s
    file alone outside a package (a file next to train.py, a script); none without a file (a notebook). Editor
    droppings (dotfiles, a dangling ``.#name.py`` lock link) are not code."""
    file = getattr(module, "__file__", None)
    if not file:
        return []
    file = Path(file).resolve()
    if not getattr(module, "__package__", None):
        return [file]
    return sorted(path for path in file.parent.glob("*.py") if not path.name.startswith(".") and path.is_file())


def source_files(data_class: type) -> list[Path]:
    """The source files whose code makes real features from a data module of ``data_class``: the extraction
    modules, and the code of the class and of each class it inherits from (a data module of one's own that
    subclasses a shipped one loads with the shipped code), but Lightning's."""
    here = Path(__file__).resolve().parent
    files = [here / name for name in EXTRACTION_MODULES]
    for cls in data_class.__mro__:
        if cls.__module__.split(".")[0] not in LIBRARY_BASES:
            files += module_code_files(sys.modules.get(cls.__module__))
    return list(dict.fromkeys(files))


@functools.lru_cache(maxsize=None)
def code_sha256(data_class: type) -> str | None:
    """``files_sha256`` of ``source_files`` (names and contents), read once per process and data class: the code a
    process runs is the code it imported, so a checkout edited while a run trains must not give its features the
    key of the edited code. None when a file cannot be read."""
    digest = files_sha256(source_files(data_class))
    return digest and digest[:20]


@functools.cache
def extraction_library_versions() -> dict[str, str | None]:
    """``EXTRACTION_LIBRARIES``' versions, read once per process, like ``code_sha256``: the libraries it imported
    (provenance's ``software()`` has no Pillow, and adding it there would make older runs' records read as trained on
    other libraries)."""
    return {name: distribution_version(name) for name in EXTRACTION_LIBRARIES}


def feature_code(datamodule) -> dict[str, Any]:
    """The code that makes the cached features: ``code_sha256`` of the data module's class and the libraries'
    versions. Without it an edited resize or loader (or an upgraded torch-fidelity) read features made by the code
    before. The metrics callback asks for it when training starts, so the hash is of the code the run imported."""
    return {"sha256": code_sha256(type(datamodule)), **extraction_library_versions()}


def cache_path(cache_dir: str | os.PathLike, name: str, key: str) -> Path:
    return Path(cache_dir) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"


def load_cached_features(cache_dir: str | os.PathLike | None, name: str, key: str) -> dict[str, Tensor] | None:
    """The features stored under ``key``, or None (no cache, no file, another key, an unreadable file)."""
    if cache_dir is None:
        return None
    path = cache_path(cache_dir, name, key)
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("key") == key:
            return stored["features"]
    except Exception as error:  # a foreign or damaged file is recomputed, never trusted
        log.warning("ignoring unreadable metrics cache %s: %s", path, error)
    return None


def store_features(cache_dir: str | os.PathLike | None, name: str, key: str, features: dict[str, Tensor]) -> None:
    if cache_dir is None:
        return
    with atomic_write(cache_path(cache_dir, name, key)) as temporary:
        torch.save({"key": key, "features": features}, temporary)


def data_identity(data_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """What real features depend on in the config: the resolved data config without its loader settings."""
    if not data_config:
        return None
    loader_settings = {"batch_size", "num_workers", "pin_memory", "persistent_workers", "on_device"}
    return {key: value for key, value in data_config.items() if key not in loader_settings}


def reference_split(datamodule) -> str:
    """The split the reference samples come from: the data's ``split`` (train, test, all, valid), or
    ``all`` for data without splits (the embedded digits, image folders, Stacked MNIST, the 2D toys)."""
    return str(getattr(datamodule, "split", None) or "all")


def data_content(datamodule) -> dict[str, Any]:
    """What real features depend on beyond the config, read from the set-up data module: the split, the
    source Stacked MNIST actually used (``source: auto`` picks MNIST when present, else the embedded
    digits), and for data read from files (image folders, CelebA) a fingerprint of the file list with
    each file's size and modification time, so adding, removing or replacing images invalidates the cache."""
    content: dict[str, Any] = {"split": reference_split(datamodule)}
    if getattr(datamodule, "source", None) is not None:
        content["source"] = datamodule.source
    paths = getattr(datamodule.train_set, "paths", None)
    if paths is not None:
        digest = hashlib.sha256()
        for path in paths:
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        content["files"] = {"count": len(paths), "sha256": digest.hexdigest()[:20]}
    return content
