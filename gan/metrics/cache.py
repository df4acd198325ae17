"""On-disk cache of real-data features, keyed by everything that changes them.

The key is the JSON of (cache format, extractor protocol incl. weights, data identity, sample count, seed);
the file name is its hash and the key is stored inside and compared on load, so a changed protocol never
reads stale features. Files are written under a temporary name and renamed, so concurrent runs (multirun
jobs, DDP ranks) never read half a file.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from gan.utils.files import atomic_write

log = logging.getLogger("gan")

CACHE_FORMAT = 1


def cache_key(**parts: Any) -> str:
    return json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)


def cached_features(cache_dir: str | os.PathLike | None, name: str, key: str,
                    compute: Callable[[], dict[str, Tensor]]) -> tuple[dict[str, Tensor], bool]:
    """(features, whether they came from the cache). ``cache_dir=None`` disables caching."""
    if cache_dir is None:
        return compute(), False
    path = Path(cache_dir) / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.pt"
    if path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if stored.get("key") == key:
                return stored["features"], True
        except Exception as error:  # a foreign or damaged file is recomputed, never trusted
            log.warning("ignoring unreadable metrics cache %s: %s", path, error)
    features = compute()
    with atomic_write(path) as temporary:
        torch.save({"key": key, "features": features}, temporary)
    return features, False


def data_identity(data_config: dict[str, Any] | None) -> dict[str, Any] | None:
    """What real features depend on: the resolved data config without its loader settings."""
    if not data_config:
        return None
    loader_settings = {"batch_size", "num_workers", "pin_memory", "persistent_workers"}
    return {key: value for key, value in data_config.items() if key not in loader_settings}
