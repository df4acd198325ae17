"""Read an offline W&B run back from its own ``run-*.wandb`` file (wandb >= 0.2x has no Python reader).

The file is a LevelDB-style log: a 7-byte header (':W&B', magic 0xBEE1, version 0), then 32 KiB blocks of
records, each with a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) and a
protobuf ``Record`` payload split across blocks.
"""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32768
HEADER = 7


def read_records(path: str | Path) -> list:
    from wandb.proto import wandb_internal_pb2

    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a W&B run file"
    records, payload, pos = [], b"", HEADER
    while pos + HEADER <= len(raw):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        pos += HEADER
        if length == 0 and kind == 0:
            break
        payload += raw[pos : pos + length]
        pos += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            records.append(record)
            payload = b""
    return records


def offline_run(run_root: str | Path, timeout_s: float = 60.0) -> dict:
    """{"config": {key: value}, "history": [{key: value}], "kinds": {record type: count}} of the one
    offline run under ``run_root`` (a ``wandb/`` folder), once its file holds the exit record:
    ``run.finish()`` can return before W&B's writer has flushed the file (seen under CPU load), so reading
    at once may find only the header. After ``timeout_s`` it returns what is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = _read_run(run_root)
        if run["kinds"].get("exit") or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def _read_run(run_root: str | Path) -> dict:
    files = list(Path(run_root).glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, f"expected one offline run under {run_root}, found {files}"
    config, history, kinds = {}, [], {}
    for record in read_records(files[0]):
        kind = record.WhichOneof("record_type")
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind == "config":
            for item in record.config.update:
                config[item.key] = json.loads(item.value_json)
        elif kind == "history":
            history.append({(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in record.history.item})
    return {"config": config, "history": history, "kinds": kinds, "dir": files[0].parent}
