"""Which code, libraries and machine produced a run: its provenance.

Two numbers can only be compared when they came from the same code, or when what differs is known. A run records,
at each start (the first and every resume), which code it runs (the framework's git commit and whether the checkout
had uncommitted changes, with a hash of them; the same for the user's own modules), the versions of the libraries
that compute its numbers, and the machine. ``train.py`` keeps the list in every checkpoint and in the run folder's
``provenance.json``; ``evaluate.py`` and ``benchmarks/reproduce.py`` copy it into what they write.

The code is read once per process, when a run first asks: that is the code the process imported, while files
edited later (during a long multirun, say) are not what it runs. Nothing here fails a run: without git, or outside
a checkout, ``commit`` is None and ``why`` says so.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from gan.utils.files import atomic_write

FRAMEWORK_ROOT = Path(__file__).resolve().parents[2]
FRAMEWORK_DISTRIBUTION = "gan-framework"
#: the libraries whose versions change the numbers a run computes (or how it runs)
DISTRIBUTIONS = ("torch", "torchvision", "lightning", "torchmetrics", "torch-fidelity", "hydra-core", "omegaconf",
                 "numpy", "scipy", "wandb")
#: modules named by ``_target_`` or ``imports`` that are libraries, not a user's own code
LIBRARY_MODULES = frozenset({"gan", "torch", "torchvision", "lightning", "pytorch_lightning", "torchmetrics",
                             "torch_fidelity", "hydra", "hydra_plugins", "omegaconf", "numpy", "scipy", "wandb",
                             "builtins", "functools", "math", "operator"})
GIT_TIMEOUT_S = 10
PROVENANCE_FILE = "provenance.json"
CODE_SUFFIXES = frozenset({".py", ".yaml", ".yml"})
MAX_CODE_FILE_BYTES = 1 << 20
#: untracked files listed by name (logs and data may land in a checkout too: the count says how many in all)
MAX_LISTED = 20


@dataclass(frozen=True)
class Checkout:
    """The state of the code in one folder: ``record`` is what a run stores (JSON values), ``diff`` the uncommitted
    changes as ``git diff HEAD --binary`` prints them, with the untracked code files as new files ('' when clean or
    unknown), written beside the record rather than into it."""
    record: dict[str, Any]
    diff: str = ""


def git(directory: Path, *args: str) -> str:
    """``git -C directory args`` 's standard output; raises ``OSError`` (no git) or ``RuntimeError`` (git's own
    first line of complaint). ``GIT_OPTIONAL_LOCKS=0``: reading must not take the index lock that a user's own git
    command (or another rank's read) may hold."""
    environment = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, timeout=GIT_TIMEOUT_S,
                          env=environment, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(lines[0] if lines else f"git {args[0]} exited with {done.returncode}")
    return done.stdout.decode(errors="replace")


def read_checkout(directory: str | os.PathLike) -> Checkout:
    """The git state of the checkout that holds ``directory``: ``commit``; ``dirty``, whether its code differs from
    the commit (tracked files changed, or untracked Python modules and configs, ``is_code``); ``diff_sha256``, a
    SHA-256 of that difference (the same commit and hash: the same code); the untracked files, code or not, by name
    (logs and data land there too). Without git or a checkout, ``commit`` is None and ``why`` says which."""
    directory = Path(directory)
    try:
        root, commit = git(directory, "rev-parse", "--show-toplevel", "HEAD").split()[:2]
        diff = git(Path(root), "diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv", "--no-color")
        untracked = git(Path(root), "ls-files", "--others", "--exclude-standard").splitlines()
        diff += "".join(new_file_diff(Path(root), name) for name in untracked if is_code(Path(root) / name))
    except FileNotFoundError:
        return Checkout({"root": str(directory), "commit": None, "why": "git is not installed"})
    except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        why = f"git timed out after {GIT_TIMEOUT_S} s" if isinstance(error, subprocess.TimeoutExpired) else str(error)
        return Checkout({"root": str(directory), "commit": None, "why": why})
    record = {"root": root, "commit": commit, "dirty": bool(diff),
              "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
              "untracked_files": len(untracked), "untracked": untracked[:MAX_LISTED]}
    return Checkout(record, diff)


def is_code(path: Path) -> bool:
    """An untracked file that is part of the code a run runs (Python modules, Hydra configs; <= 1 MB), which a
    commit alone would not reproduce: it joins the diff. Other untracked files (logs, data, pictures) are listed."""
    try:
        return path.suffix in CODE_SUFFIXES and path.is_file() and path.stat().st_size <= MAX_CODE_FILE_BYTES
    except OSError:
        return False


def new_file_diff(root: Path, name: str) -> str:
    """The diff that creates untracked file ``name`` (as ``git apply`` takes it)."""
    environment = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    done = subprocess.run(["git", "-C", str(root), "diff", "--no-index", "--binary", "--no-color", "--", os.devnull, name],
                          capture_output=True, timeout=GIT_TIMEOUT_S, env=environment, check=False)
    if done.returncode not in (0, 1):  # 1: the files differ, as they do
        raise RuntimeError(done.stderr.decode(errors="replace").strip().splitlines()[0])
    return done.stdout.decode(errors="replace")


def installed_package(directory: Path) -> bool:
    """Whether ``directory`` is inside an installed package (site-packages), where a git checkout found above it
    would be someone else's (a project whose virtual environment lies inside its repository)."""
    installed = {Path(p).resolve() for p in (sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")) if p}
    return any(part in ("site-packages", "dist-packages") for part in directory.parts) or \
        any(directory == place or place in directory.parents for place in installed)


def framework_checkout() -> Checkout:
    """The framework's own code: its git state (a clone), or the installed distribution's version."""
    version = distribution_version(FRAMEWORK_DISTRIBUTION)
    if installed_package(FRAMEWORK_ROOT):
        return Checkout({"root": str(FRAMEWORK_ROOT), "commit": None, "why": "an installed package", "version": version})
    checkout = read_checkout(FRAMEWORK_ROOT)
    return Checkout({**checkout.record, "version": version}, checkout.diff)


def own_module_checkouts(module_names: Iterable[str], framework_root: str | None) -> list[Checkout]:
    """The code of the user's own modules among ``module_names`` (top-level names of imported modules), one entry
    per checkout that holds them (none for those inside the framework's checkout, or installed). A module outside
    any checkout is identified by a SHA-256 of its ``.py`` files."""
    by_place: dict[str, tuple[list[str], Checkout]] = {}
    for name in sorted(set(module_names)):
        if name in LIBRARY_MODULES or name in sys.stdlib_module_names:
            continue
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if not file:
            continue
        path = Path(file).resolve()
        folder = path.parent
        if installed_package(folder):
            continue
        checkout = read_checkout(folder)
        if checkout.record["commit"] is None:
            checkout = Checkout({"root": str(folder), "commit": None, "why": checkout.record["why"],
                                 "files_sha256": files_sha256(folder if path.name == "__init__.py" else path)})
        place = checkout.record["root"]
        if framework_root is not None and place == framework_root:
            continue  # the framework's checkout (examples/own_parts): recorded as the framework's code
        names, _ = by_place.setdefault(place, ([], checkout))
        names.append(name)
    return [Checkout({"modules": names, **checkout.record}, checkout.diff) for names, checkout in by_place.values()]


def files_sha256(path: Path) -> str | None:
    """A SHA-256 over the ``.py`` files of a package folder (their relative paths and contents), or of one file; None
    when one cannot be read (a record never stops a run)."""
    digest = hashlib.sha256()
    try:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def module_names_in(config: Any) -> Iterator[str]:
    """The top-level module of every ``_target_`` in a (resolved) config, and of every module in ``imports``."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "_target_" and isinstance(value, str):
                yield value.split(".", 1)[0]
            elif key == "imports" and isinstance(value, (list, tuple)):
                yield from (str(name).split(".", 1)[0] for name in value)
            else:
                yield from module_names_in(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            yield from module_names_in(value)


def distribution_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def software() -> dict[str, Any]:
    """Python, the platform and the libraries' versions (None: not installed)."""
    import torch

    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    versions.update({name: distribution_version(name) for name in DISTRIBUTIONS})
    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return versions


@functools.cache
def hardware() -> dict[str, Any]:
    """The machine: its name, CPU model and core count, and the GPUs torch sees."""
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"host": platform.node(), "cpu": cpu_model(), "cpu_count": os.cpu_count(), "gpus": gpus}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _framework_at_start() -> Checkout:
    return framework_checkout()


@functools.cache
def _own_at_start(module_names: frozenset[str], framework_root: str | None) -> tuple[Checkout, ...]:
    return tuple(own_module_checkouts(module_names, framework_root))


@dataclass(frozen=True)
class Provenance:
    """One start of a run (or one evaluation): ``record`` (JSON values) and the uncommitted diffs by the checkout's
    root folder."""
    record: dict[str, Any]
    diffs: dict[str, str]


def collect(config: dict[str, Any] | None = None, from_generator_step: int | None = None) -> Provenance:
    """This process's provenance: the framework's code, the code of the user's modules that ``config`` names
    (``imports``, ``_target_``), the libraries, the machine, the command and the time; ``from_generator_step``: the
    generator step a run starts from (0, or where a resume goes on)."""
    framework = _framework_at_start()
    own = _own_at_start(frozenset(module_names_in(config or {})), framework.record.get("root") if framework.record.get("commit") else None)
    record: dict[str, Any] = {}
    if from_generator_step is not None:
        record["from_generator_step"] = int(from_generator_step)
    # copies: the cached records are this process's, a run's record gets its own diff file names
    record.update(started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), command=list(sys.argv),
                  code={"framework": dict(framework.record), "own": [dict(checkout.record) for checkout in own]},
                  software=dict(software()), hardware=dict(hardware()))
    diffs = {checkout.record["root"]: checkout.diff for checkout in (framework, *own) if checkout.diff}
    return Provenance(record, diffs)


def write_diffs(folder: str | os.PathLike, provenance: Provenance, label: str) -> None:
    """Writes each uncommitted diff of ``provenance`` to ``folder/code_diffs/<label>_<checkout>.diff`` (``git apply``
    takes it on the recorded commit) and names the file in the checkout's record (``diff_file``, relative to
    ``folder``)."""
    code = provenance.record["code"]
    for name, checkout in [("framework", code["framework"]), *((f"own{i}", c) for i, c in enumerate(code["own"], 1))]:
        diff = provenance.diffs.get(checkout.get("root"))
        if checkout.get("dirty") and diff:
            relative = Path("code_diffs") / f"{label}_{name}.diff"
            with atomic_write(Path(folder) / relative) as temporary:
                temporary.write_text(diff)
            checkout["diff_file"] = str(relative)


def run_history(saved: list[dict[str, Any]] | None, resumed_at: int | None, now: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's starts: those its checkpoint holds, then this one. The steps of a checkpoint written before the
    framework recorded provenance (2026-12-07) get an entry that says so."""
    if resumed_at is None:
        return [now]
    earlier = list(saved) if saved else [{"from_generator_step": 0, "code": None,
                                          "note": "not recorded (a checkpoint written before the framework recorded provenance)"}]
    return [*earlier, now]


def code_change(saved: list[dict[str, Any]] | None, now: dict[str, Any]) -> str | None:
    """How the code of a resumed run differs from the code its checkpoint trained with (None: the same, or unknown)."""
    before = (saved or [None])[-1]
    if code_identity(before) is None or code_identity(now) is None or code_identity(before) == code_identity(now):
        return None
    return f"it trained with {describe_code(before)}; this process runs {describe_code(now)}"


def write_history(folder: str | os.PathLike, history: list[dict[str, Any]]) -> Path:
    """``folder/provenance.json``: the run's starts, oldest first (rewritten at each start)."""
    path = Path(folder) / PROVENANCE_FILE
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(history, indent=2, default=str))
    return path


def code_identity(record: dict[str, Any] | None) -> tuple | None:
    """What says two records ran the same code: each checkout's root-independent commit and diff hash (or file hash);
    None when the record says nothing (no provenance, or no commit anywhere)."""
    if not record or not record.get("code"):  # no provenance, or a start recorded before it was (``run_history``)
        return None
    checkouts = [record["code"].get("framework") or {}, *(record["code"].get("own") or [])]
    identity = tuple((tuple(c.get("modules") or ()), c.get("commit"), c.get("diff_sha256"), c.get("files_sha256"))
                     for c in checkouts)
    return identity if any(commit or files for _, commit, _, files in identity) else None


def history_identity(history: list[dict[str, Any]] | None) -> tuple | None:
    """What says two runs were trained by the same code, piece for piece: each start's ``code_identity`` (None when a
    start did not record it)."""
    identities = tuple(code_identity(start) for start in history or ())
    return None if not identities or None in identities else identities


def describe_history(history: list[dict[str, Any]] | None) -> str:
    """``commit 1a2b... until generator step 2000, then commit 3c4d...`` (consecutive starts on one code once)."""
    pieces: list[tuple[str, int]] = []
    for start in history or ():
        code = describe_code(start) if start.get("code") else "code not recorded"
        if not pieces or pieces[-1][0] != code:
            pieces.append((code, int(start.get("from_generator_step") or 0)))
    if not pieces:
        return "code not recorded"
    return ", then ".join(code + (f" from generator step {step}" if i else "") for i, (code, step) in enumerate(pieces))


def environment_differences(histories: Iterable[list[dict[str, Any]] | None],
                            others: Iterable[list[dict[str, Any]] | None]) -> list[str]:
    """The libraries and machines two sets of runs were trained on, where they differ: ``torch 2.14.1 -> 2.13.0``,
    ``gpus NVIDIA H100 -> NVIDIA A100`` (each side's values over all its runs' starts, joined by ``/``)."""
    def values(sets, section: str, key: str) -> str:
        seen = {str(start.get(section, {}).get(key)) for history in sets for start in history or () if start.get(section)}
        return "/".join(sorted(seen))

    histories, others = list(histories), list(others)
    differences = []
    for section, keys in (("software", ("python", *DISTRIBUTIONS, "cuda")), ("hardware", ("cpu", "gpus"))):
        for key in keys:
            ours, theirs = values(histories, section, key), values(others, section, key)
            if ours and theirs and ours != theirs:
                differences.append(f"{key} {ours} -> {theirs}")
    return differences


def describe_code(record: dict[str, Any]) -> str:
    """``commit 1a2b3c4d5e6f with uncommitted changes (diff sha256 9f8e7d6c)``, then each checkout of one's own
    (``+ mypkg at commit ...``, or its files' hash), for a console line or a table's note."""
    code = record.get("code") or {}
    text = describe_checkout(code.get("framework") or {})
    for checkout in code.get("own") or []:
        text += f" + {', '.join(checkout.get('modules') or ())} at {describe_checkout(checkout)}"
    return text


def describe_checkout(checkout: dict[str, Any]) -> str:
    if checkout.get("commit"):
        text = f"commit {checkout['commit'][:12]}"
        return text + (f" with uncommitted changes (diff sha256 {checkout['diff_sha256'][:8]})" if checkout.get("dirty") else "")
    if checkout.get("files_sha256"):
        return f"files sha256 {checkout['files_sha256'][:8]} ({checkout.get('why')})"
    return f"unknown code ({checkout.get('why', 'not recorded')})"


def code_label() -> str | None:
    """This process's framework code in one word, for a benchmark's record: the short commit, with ``+changes:<diff
    sha256>`` when the checkout had uncommitted changes (None outside a checkout)."""
    framework = _framework_at_start().record
    if not framework.get("commit"):
        return None
    return framework["commit"][:12] + (f"+changes:{framework['diff_sha256'][:8]}" if framework.get("dirty") else "")


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """A few columns for a logger's config (W&B's runs table): the framework's commit and whether it was dirty, the
    main libraries and the device."""
    framework = (record.get("code") or {}).get("framework") or {}
    software_, hardware_ = record.get("software") or {}, record.get("hardware") or {}
    return {"commit": framework.get("commit"), "dirty": framework.get("dirty"),
            "torch": software_.get("torch"), "lightning": software_.get("lightning"),
            "device": ", ".join(hardware_.get("gpus") or []) or hardware_.get("cpu")}
