"""Which code, libraries and machine produced a run: its provenance.

Two numbers can only be compared when they came from the same code, or when what differs is known. A run records,
at each start (the first and every resume), which code it runs (the framework's git commit and whether its code
differs from it, with a hash of the difference and the difference itself; the same for the user's own modules), the
versions of the libraries that compute its numbers, and the machine. ``train.py`` keeps the list in every checkpoint
and in the run folder's ``provenance.json``; ``evaluate.py`` and the benchmarks copy it into what they write.

The code is read once per process, when a run first asks: that is the code the process imported, while files
edited later (during a long multirun, say) are not what it runs. Nothing here fails a run: without git, or outside
a checkout, ``commit`` is None and ``why`` says so.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
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

from gan.utils.checkpoint import run_folder
from gan.utils.files import atomic_write

log = logging.getLogger("gan")

FRAMEWORK_ROOT = Path(__file__).resolve().parents[2]
FRAMEWORK_DISTRIBUTION = "gan-framework"
#: the libraries whose versions change the numbers a run computes (or how it runs)
DISTRIBUTIONS = ("torch", "torchvision", "lightning", "torchmetrics", "torch-fidelity", "hydra-core", "omegaconf",
                 "numpy", "scipy", "wandb")
#: top-level modules named by ``_target_`` or ``imports`` that are libraries, not a user's own code (the standard
#: library's are known to Python: ``sys.stdlib_module_names``)
LIBRARY_MODULES = frozenset({"gan", "torch", "torchvision", "lightning", "pytorch_lightning", "torchmetrics",
                             "torch_fidelity", "hydra", "hydra_plugins", "omegaconf", "numpy", "scipy", "wandb"})
COMMAND_TIMEOUT_S = 10
PROVENANCE_FILE = "provenance.json"
#: what counts as code in a checkout: changes to tracked files of these kinds (the shipped digit classifier's weights
#: change fid_digits; README edits and benchmark results change nothing a run computes) ...
TRACKED_CODE = ("*.py", "*.yaml", "*.yml", "*.pt", "*.pth", "*.npz", "*.npy")
#: ... and untracked Python modules and YAML configs, up to these limits (a virtual environment inside a checkout that
#: git does not ignore holds ~15,000 modules: beyond the limits, files are counted, not recorded)
UNTRACKED_CODE_SUFFIXES = frozenset({".py", ".yaml", ".yml"})
MAX_UNTRACKED_CODE_FILES = 100
MAX_CODE_FILE_BYTES = 1 << 20
#: untracked files listed by name (logs and data may land in a checkout too: the count says how many in all)
MAX_LISTED = 20
#: git settings that change what ``git diff`` prints (a diff must apply, and hash alike, whatever the user's config)
DIFF_SETTINGS = ("diff.noprefix=false", "diff.mnemonicPrefix=false", "diff.relative=false", "diff.suppressBlankEmpty=false",
                 "diff.algorithm=myers", "diff.indentHeuristic=true", "diff.interHunkContext=0", "diff.context=3",
                 "core.quotePath=true")
#: variables that would point git at another repository than the folder's (set inside a git hook, say)
GIT_LOCATION_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                          "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX")


@dataclass(frozen=True)
class Checkout:
    """The state of the code in one folder: ``record`` is what a run stores (JSON values), ``diff`` the uncommitted
    changes to its code (``TRACKED_CODE``, untracked code files as new files) as ``git diff HEAD --binary`` prints
    them, bytes (b'' when clean or unknown), written beside the record rather than into it."""
    record: dict[str, Any]
    diff: bytes = b""


def git(directory: Path, *args: str, ok: tuple[int, ...] = (0,)) -> bytes:
    """``git -C directory args``'s standard output; raises ``OSError`` (no git), ``subprocess.TimeoutExpired`` or
    ``RuntimeError`` (git's own first line of complaint). ``GIT_OPTIONAL_LOCKS=0``: reading must not take the index
    lock that a user's own git command (or another rank's read) may hold."""
    environment = {key: value for key, value in os.environ.items() if key not in GIT_LOCATION_VARIABLES}
    environment.update(GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    settings = [part for setting in DIFF_SETTINGS for part in ("-c", setting)]
    done = subprocess.run(["git", *settings, "-C", str(directory), *args], capture_output=True, timeout=COMMAND_TIMEOUT_S,
                          env=environment, check=False)
    if done.returncode not in ok:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(lines[0] if lines else f"git {args[0]} exited with {done.returncode}")
    return done.stdout


def read_checkout(directory: str | os.PathLike) -> Checkout:
    """The git state of the checkout that holds ``directory``: ``commit``; ``dirty``, whether its code differs from
    the commit (``TRACKED_CODE`` changed, or untracked code files); ``diff_sha256``, a SHA-256 of that difference (the
    same commit and hash: the same code); the untracked files, code or not, by name (logs and data land there too).
    Without git or a checkout, ``commit`` is None and ``why`` says which; when the commit is known but the changes
    cannot be read, ``dirty`` is None and ``why`` says why. Changes inside submodules are not seen."""
    directory = Path(directory)
    try:
        root, commit = git(directory, "rev-parse", "--show-toplevel", "HEAD").decode().splitlines()[:2]
    except FileNotFoundError:
        return Checkout({"root": str(directory), "commit": None, "why": "git is not installed"})
    except (OSError, RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        return Checkout({"root": str(directory), "commit": None, "why": git_failure(error)})
    record: dict[str, Any] = {"root": root, "commit": commit}
    try:
        diff = git(Path(root), "diff", "HEAD", "--binary", "--no-ext-diff", "--no-textconv", "--no-color", "--no-renames",
                   "--", *TRACKED_CODE)
        untracked = [name for name in git(Path(root), "ls-files", "-z", "--others", "--exclude-standard")
                     .decode(errors="surrogateescape").split("\0") if name]
        code = [name for name in untracked if is_code(Path(root), name)]
        diff += b"".join(new_file_diff(Path(root), name) for name in code[:MAX_UNTRACKED_CODE_FILES])
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
        return Checkout({**record, "dirty": None, "diff_sha256": None, "why": f"changes not read: {git_failure(error)}"})
    record.update(dirty=bool(diff), diff_sha256=hashlib.sha256(diff).hexdigest() if diff else None,
                  untracked_files=len(untracked), untracked=untracked[:MAX_LISTED])
    if len(code) > MAX_UNTRACKED_CODE_FILES:
        record["why"] = (f"{len(code)} untracked code files: the first {MAX_UNTRACKED_CODE_FILES} are recorded (a "
                         "virtual environment inside the checkout? let .gitignore name it)")
    return Checkout(record, diff)


def git_failure(error: BaseException) -> str:
    return f"git timed out after {COMMAND_TIMEOUT_S} s" if isinstance(error, subprocess.TimeoutExpired) else str(error)


def is_code(root: Path, name: str) -> bool:
    """An untracked file that is part of the code a run runs (a Python module or YAML config, <= 1 MB), which a
    commit alone would not reproduce: it joins the diff. Not the files of a Hydra run folder inside the checkout
    (one holding ``.hydra/``: a run's configs and logs are output, not code), nor other untracked files (logs, data,
    pictures), which are listed."""
    path = root / name
    if path.suffix not in UNTRACKED_CODE_SUFFIXES:
        return False
    try:
        if not path.is_file() or path.stat().st_size > MAX_CODE_FILE_BYTES:
            return False
        return not any(folder.name == ".hydra" or (folder / ".hydra").is_dir()
                       for folder in path.parents if folder == root or root in folder.parents)
    except OSError:
        return False


def new_file_diff(root: Path, name: str) -> bytes:
    """The diff that creates untracked file ``name`` (as ``git apply`` takes it; ``git diff`` exits 1 when the files
    differ, as they do)."""
    return git(root, "diff", "--no-index", "--binary", "--no-color", "--", os.devnull, name, ok=(0, 1))


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
    per place that holds them: a git checkout (none for the framework's own, ``framework_root``), an installed
    distribution (its version), or a folder outside git, identified by a SHA-256 of its modules' ``.py`` files."""
    by_place: dict[str, tuple[list[str], list[Path], Checkout]] = {}
    for name in sorted(set(module_names)):
        if name in LIBRARY_MODULES or name in sys.stdlib_module_names:
            continue
        file = getattr(sys.modules.get(name), "__file__", None) or module_origin(name)
        if not file:
            continue
        path = Path(file).resolve()
        source = path.parent if path.name == "__init__.py" else path  # a package's folder, or the module's file
        if installed_package(path.parent):
            distributions = metadata.packages_distributions().get(name) or [name]
            checkout = Checkout({"root": str(path.parent), "commit": None, "why": "an installed package",
                                 "version": distribution_version(distributions[0])})
        else:
            checkout = read_checkout(path.parent)
        place = checkout.record["root"] if checkout.record["commit"] or checkout.record.get("version") else str(path.parent)
        if framework_root is not None and place == framework_root:
            continue  # the framework's checkout (examples/own_parts): recorded as the framework's code
        names, sources, _ = by_place.setdefault(place, ([], [], checkout))
        names.append(name)
        sources.append(source)
    checkouts = []
    for names, sources, checkout in by_place.values():
        record = {"modules": names, **checkout.record}
        if not record["commit"] and not record.get("version"):  # outside git: every module of the folder, hashed
            record["files_sha256"] = files_sha256(sources)
        checkouts.append(Checkout(record, checkout.diff))
    return checkouts


def module_origin(name: str) -> str | None:
    """The file of top-level module ``name``, found without importing it (evaluate.py reads its provenance before it
    builds a generator of one's own); None when it is not found or not a file."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def files_sha256(sources: list[Path]) -> str | None:
    """A SHA-256 over modules' ``.py`` files (each package folder's, by relative path, and single files by name, in
    order); None when one cannot be read (a record never stops a run)."""
    digest = hashlib.sha256()
    try:
        for source in sources:
            files = sorted(source.rglob("*.py")) if source.is_dir() else [source]
            for file in files:
                label = f"{source.name}/{file.relative_to(source)}" if source.is_dir() else file.name
                digest.update(label.encode() + b"\0" + file.read_bytes() + b"\0")
    except OSError:
        return None
    return digest.hexdigest()


def module_names_in(config: Any) -> Iterator[str]:
    """The top-level module of every ``_target_`` in a (resolved) config, and of every module in ``imports``."""
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "_target_" and isinstance(value, str):
                yield value.split(".", 1)[0]
            elif key == "imports" and isinstance(value, (str, list, tuple)):  # imports=mypkg: one module
                yield from (str(name).split(".", 1)[0] for name in ([value] if isinstance(value, str) else value))
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
    """This process's machine (under DDP, rank 0's node): its name, CPU model and core count, and its GPUs."""
    return {"host": platform.node(), "cpu": cpu_model(), "cpu_count": os.cpu_count(), "gpus": gpu_names()}


def gpu_names() -> list[str]:
    """The GPUs' names, read without initializing CUDA in this process (a process that initialized it cannot fork
    the workers of ``ddp_fork`` / ``ddp_notebook``, which is why Lightning asks NVML whether CUDA is available): from
    torch where CUDA is initialized already, else from ``nvidia-smi``, else a count."""
    import torch

    count = torch.cuda.device_count()  # NVML's count under Lightning's PYTORCH_NVML_BASED_CUDA_CHECK: no initialization
    if count == 0:
        return []
    if torch.cuda.is_initialized():
        return [torch.cuda.get_device_name(i) for i in range(count)]
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=True)
        names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if names:
            return names
    except (OSError, subprocess.SubprocessError):
        pass
    return [f"{count} CUDA device(s), names not read"]


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
    diffs: dict[str, bytes]


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
    takes it on the recorded commit; bytes as git wrote them, whatever the files' encoding) and names the file in the
    checkout's record (``diff_file``, relative to ``folder``, the run's or the evaluation's folder)."""
    code = provenance.record["code"]
    for name, checkout in [("framework", code["framework"]), *((f"own{i}", c) for i, c in enumerate(code["own"], 1))]:
        diff = provenance.diffs.get(checkout.get("root"))
        if checkout.get("dirty") and diff:
            relative = Path("code_diffs") / f"{label}_{name}.diff"
            with atomic_write(Path(folder) / relative) as temporary:
                temporary.write_bytes(diff)
            checkout["diff_file"] = str(relative)


def record_start(folder: str | os.PathLike, run_config: dict[str, Any], saved: list[dict[str, Any]] | None,
                 resumed_at: int | None, checkpoint_path: str | None) -> list[dict[str, Any]]:
    """A training run's starts with this one added, written to ``folder/provenance.json`` with this start's uncommitted
    diffs beside it (and an earlier start's, copied from the checkpoint's run folder when the run goes on in another
    folder); a resume whose code differs from the checkpoint's is said, and the start's code and device in one line."""
    now = collect(run_config, from_generator_step=resumed_at or 0)
    write_diffs(folder, now, label=f"gstep_{resumed_at or 0:07d}")
    if resumed_at is not None:
        changed = code_change(saved, now.record)
        if changed:  # allowed (a fix, a new feature), but the run's later steps are not what its earlier code computes
            log.warning("resuming %s: %s, so the steps after generator step %d come from other code (provenance.json "
                        "in the run folder records both)", checkpoint_path, changed, resumed_at)
        copy_earlier_diffs(saved, run_folder(checkpoint_path), Path(folder))
    history = run_history(saved, resumed_at, now.record)
    path = write_history(folder, history)
    hardware_ = now.record["hardware"]
    device = ", ".join(hardware_["gpus"]) or f"{hardware_['cpu']} ({hardware_['cpu_count']} cores)"
    log.info("Code: %s; torch %s, Lightning %s on %s (%s)", describe_code(now.record), now.record["software"]["torch"],
             now.record["software"]["lightning"], device, path)
    return history


def copy_earlier_diffs(saved: list[dict[str, Any]] | None, source: Path, folder: Path) -> None:
    """The diff files that earlier starts name, from the run folder of the checkpoint a resume reads (``source``) into
    this run's, where they are not yet (a resume into another folder: the names are relative to the run folder)."""
    for start in saved or ():
        for checkout in [(start.get("code") or {}).get("framework") or {}, *((start.get("code") or {}).get("own") or [])]:
            name = checkout.get("diff_file")
            if name and not (folder / name).exists() and (source / name).is_file():
                with atomic_write(folder / name) as temporary:
                    temporary.write_bytes((source / name).read_bytes())


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
    """What says two records ran the same code: each checkout's commit and diff hash, or an installed package's
    version, or a folder's file hash (not the folder itself: the same code in another clone is the same code); None
    when the record says nothing (no provenance, or nothing known of the framework's code)."""
    if not record or not record.get("code"):  # no provenance, or a start recorded before it was (``run_history``)
        return None
    checkouts = [record["code"].get("framework") or {}, *(record["code"].get("own") or [])]
    if not (checkouts[0].get("commit") or checkouts[0].get("version")):
        return None
    return tuple((tuple(c.get("modules") or ()), c.get("commit"), c.get("diff_sha256"), c.get("version"),
                  c.get("files_sha256")) for c in checkouts)


def history_identity(history: list[dict[str, Any]] | None) -> tuple | None:
    """What says two runs were trained by the same code, piece for piece: the ``code_identity`` of each start, a
    run resumed on the same code counting once (None when a start did not record it)."""
    identities: list[tuple] = []
    for start in history or ():
        identity = code_identity(start)
        if identity is None:
            return None
        if not identities or identities[-1] != identity:
            identities.append(identity)
    return tuple(identities) or None


def describe_history(history: list[dict[str, Any]] | None) -> str:
    """``commit 1a2b..., then commit 3c4d... from generator step 2000`` (consecutive starts on one code once)."""
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
        if checkout.get("dirty") is None and checkout.get("why"):
            return f"{text} ({checkout['why']})"
        return text + (f" with uncommitted changes (diff sha256 {checkout['diff_sha256'][:8]})" if checkout.get("dirty") else "")
    if checkout.get("version"):
        return f"version {checkout['version']} ({checkout.get('why')})"
    if checkout.get("files_sha256"):
        return f"files sha256 {checkout['files_sha256'][:8]} ({checkout.get('why')})"
    return f"unknown code ({checkout.get('why', 'not recorded')})"


def code_label(framework: dict[str, Any] | None = None) -> str | None:
    """The framework's code in one word (this process's unless a record's ``framework`` is given), for a benchmark's
    record, a sweep's summary or a logger's column: the short commit, with ``+changes:<diff sha256>`` when the checkout
    had uncommitted changes; an installed package's ``v<version>``; None when nothing is known."""
    framework = _framework_at_start().record if framework is None else framework
    if framework.get("commit"):
        return framework["commit"][:12] + (f"+changes:{framework['diff_sha256'][:8]}" if framework.get("dirty") else "")
    return f"v{framework['version']}" if framework.get("version") else None


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """A few columns for a logger's config (W&B's runs table): the framework's code (``code_label``: runs with other
    uncommitted changes group apart), commit and whether it was dirty, the main libraries and the device."""
    framework = (record.get("code") or {}).get("framework") or {}
    software_, hardware_ = record.get("software") or {}, record.get("hardware") or {}
    return {"code": code_label(framework), "commit": framework.get("commit"), "dirty": framework.get("dirty"),
            "torch": software_.get("torch"), "lightning": software_.get("lightning"),
            "device": ", ".join(hardware_.get("gpus") or []) or hardware_.get("cpu")}


def group_by_code(items: Iterable[tuple[Any, list[dict[str, Any]] | None]]) -> dict[str, list[Any]]:
    """``items`` (a key, a run's provenance list) grouped by the code that trained them (``describe_history``), in
    the order first seen: a table's note and evaluate.py's comparison say which runs ran on which code."""
    groups: dict[str, list[Any]] = {}
    for key, history in items:
        groups.setdefault(describe_history(history), []).append(key)
    return groups
