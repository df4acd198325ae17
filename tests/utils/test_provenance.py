"""gan.utils.provenance: which code, libraries and machine a run records, checked against git itself."""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from gan.utils import provenance
from gan.utils.provenance import (Provenance, code_change, code_identity, collect, describe_code, module_names_in,
                                  own_module_checkouts, read_checkout, run_history)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def run_git(folder: Path, *args: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in provenance.GIT_LOCATION_VARIABLES}  # a git hook's
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True,
                          env=environment).stdout


def repository(folder: Path, files: dict[str, str]) -> Path:
    """A git repository in ``folder`` with ``files`` committed."""
    folder.mkdir(parents=True, exist_ok=True)
    run_git(folder, "init", "-q")
    run_git(folder, "config", "user.email", "test@example.com")
    run_git(folder, "config", "user.name", "test")
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    run_git(folder, "add", ".")
    run_git(folder, "commit", "-q", "-m", "start")
    return folder


def test_a_clean_checkout_is_its_commit(tmp_path):
    repo = repository(tmp_path / "repo", {"model.py": "x = 1\n"})
    checkout = read_checkout(repo / ".")
    assert checkout.record["commit"] == run_git(repo, "rev-parse", "HEAD").strip()
    assert checkout.record["root"] == run_git(repo, "rev-parse", "--show-toplevel").strip()
    assert (checkout.record["dirty"], checkout.record["diff_sha256"], checkout.diff) == (False, None, b"")
    assert checkout.record["untracked_files"] == 0


def test_the_recorded_diff_on_the_commit_rebuilds_the_code_and_its_hash_names_it(tmp_path):
    """The property a record promises: its commit plus its diff is the code that ran, so the diff applied to a clone
    of that commit gives the same Python and config files; untracked code files travel in it, other files do not."""
    repo = repository(tmp_path / "repo", {"model.py": "x = 1\n", "conf/a.yaml": "lr: 1\n", "gone.py": "y = 2\n"})
    (repo / "model.py").write_text("x = 2\n")
    (repo / "gone.py").unlink()
    (repo / "conf" / "mine.yaml").write_text("lr: 3\n")  # a config of one's own, not committed
    (repo / "helper.py").write_text("z = 3\n")
    (repo / "notes.txt").write_text("not code\n")
    checkout = read_checkout(repo)
    record = checkout.record
    assert record["dirty"] is True
    assert record["diff_sha256"] == hashlib.sha256(checkout.diff).hexdigest()
    assert sorted(record["untracked"]) == ["conf/mine.yaml", "helper.py", "notes.txt"] and record["untracked_files"] == 3
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    run_git(clone, "checkout", "-q", record["commit"])
    patch = tmp_path / "changes.diff"
    patch.write_bytes(checkout.diff)
    run_git(clone, "apply", str(patch))
    code = lambda root: {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*")  # noqa: E731
                         if p.suffix in (".py", ".yaml") and ".git" not in p.parts}
    assert code(clone) == code(repo)
    assert not (clone / "notes.txt").exists()
    # the same changes, the same hash; one more character, another
    assert read_checkout(repo).record["diff_sha256"] == record["diff_sha256"]
    (repo / "helper.py").write_text("z = 4\n")
    assert read_checkout(repo).record["diff_sha256"] != record["diff_sha256"]


def test_without_a_checkout_or_without_git_the_commit_is_none_and_why_is_said(tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above tmp_path is found either
    record = read_checkout(plain).record
    assert record["commit"] is None and "not a git repository" in record["why"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    record = read_checkout(plain).record
    assert record == {"root": str(plain), "commit": None, "why": "git is not installed"}


def test_an_installed_framework_is_its_distribution_not_the_checkout_around_it(tmp_path, monkeypatch):
    """A virtual environment inside a project's repository: the framework's folder is in a git checkout, the
    project's, whose commit says nothing of the framework."""
    repo = repository(tmp_path / "project", {"main.py": ""})
    installed = repo / ".venv" / "lib" / "python3.11" / "site-packages"
    installed.mkdir(parents=True)
    assert read_checkout(installed).record["commit"] is not None  # what would be recorded without the check
    monkeypatch.setattr(provenance, "FRAMEWORK_ROOT", installed)
    record = provenance.framework_checkout().record
    assert record["commit"] is None and record["why"] == "an installed package"
    assert record["version"] == provenance.distribution_version(provenance.FRAMEWORK_DISTRIBUTION)


def test_own_modules_are_recorded_by_their_checkout_or_the_hash_of_their_files(tmp_path, monkeypatch):
    repo = repository(tmp_path / "work", {"mine_in_git/__init__.py": "A = 1\n", "mine_too/__init__.py": ""})
    loose = tmp_path / "loose"
    (loose / "mine_loose").mkdir(parents=True)
    (loose / "mine_loose" / "__init__.py").write_text("B = 1\n")
    (loose / "mine_loose" / "part.py").write_text("C = 1\n")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for folder in (repo, loose):
        monkeypatch.syspath_prepend(str(folder))
    for name in ("mine_in_git", "mine_too", "mine_loose"):
        monkeypatch.delitem(sys.modules, name, raising=False)
        importlib.import_module(name)
    monkeypatch.delitem(sys.modules, "mine_too")  # not imported yet (a generator's module, before evaluate.py builds it)
    names = ["mine_in_git", "mine_too", "mine_loose", "torch", "gan", "json", "not_a_module"]
    records = [checkout.record for checkout in own_module_checkouts(names, framework_root=None)]
    by_modules = {tuple(r["modules"]): r for r in records}
    assert set(by_modules) == {("mine_in_git", "mine_too"), ("mine_loose",)}  # libraries, stdlib, none such: left out
    assert "mine_too" not in sys.modules  # found, not imported
    assert by_modules[("mine_in_git", "mine_too")]["commit"] == run_git(repo, "rev-parse", "HEAD").strip()
    loose_record = by_modules[("mine_loose",)]
    assert loose_record["commit"] is None and "not a git repository" in loose_record["why"]
    expected = hashlib.sha256()
    for name in ("__init__.py", "part.py"):
        expected.update(f"mine_loose/{name}".encode() + b"\0" + (loose / "mine_loose" / name).read_bytes() + b"\0")
    assert loose_record["files_sha256"] == expected.hexdigest()
    # the framework's own checkout (examples/own_parts lives in it) is not recorded twice
    root = run_git(repo, "rev-parse", "--show-toplevel").strip()
    assert [c.record["modules"] for c in own_module_checkouts(names, framework_root=root)] == [["mine_loose"]]


def test_the_modules_a_config_names():
    config = {"imports": ["mypkg.metrics"], "model": {"_target_": "gan.module.GANModule",
                                                    "generator": {"_target_": "mynets.G", "layers": [{"_target_": "x.y.Z"}]}},
              "loss": {"_target_": "torch.nn.BCELoss"}, "note": "_target_"}
    assert sorted(set(module_names_in(config))) == ["gan", "mynets", "mypkg", "torch", "x"]


def record_with(commit: str | None, diff: str | None = None, own=()) -> dict:
    framework = {"commit": commit, "dirty": diff is not None, "diff_sha256": diff} if commit else {"commit": None, "why": "x"}
    return {"code": {"framework": framework, "own": list(own)}}


def test_a_resume_on_other_code_is_described_and_the_same_code_is_not():
    a, b = "a" * 40, "b" * 40
    assert code_change([record_with(a)], record_with(a)) is None
    assert code_change([record_with(a)], record_with(b)) == \
        f"it trained with commit {a[:12]}; this process runs commit {b[:12]}"
    assert code_change([record_with(a)], record_with(a, "f" * 64)) == \
        f"it trained with commit {a[:12]}; this process runs commit {a[:12]} with uncommitted changes (diff sha256 ffffffff)"
    own = {"modules": ["mypkg"], "commit": None, "why": "not a git repository", "files_sha256": "1" * 64}
    changed_own = {**own, "files_sha256": "2" * 64}
    assert code_change([record_with(a, own=[own])], record_with(a, own=[changed_own])) == \
        (f"it trained with commit {a[:12]} + mypkg at files sha256 11111111 (not a git repository); this process runs "
         f"commit {a[:12]} + mypkg at files sha256 22222222 (not a git repository)")
    # nothing known on one side: nothing to compare, nothing said
    assert code_change(None, record_with(a)) is None
    assert code_change([record_with(None)], record_with(a)) is None
    assert code_identity(record_with(None)) is None and describe_code(record_with(None)) == "unknown code (x)"


def test_a_runs_history_adds_each_start_to_those_its_checkpoint_holds():
    first, second = {"from_generator_step": 0}, {"from_generator_step": 7}
    assert run_history(None, None, first) == [first]
    assert run_history([first], 7, second) == [first, second]
    placeholder, now = run_history(None, 7, second)
    assert now == second and placeholder["code"] is None and placeholder["from_generator_step"] == 0


def test_a_record_holds_the_libraries_versions_and_survives_a_weights_only_checkpoint():
    record = collect({"imports": []}, from_generator_step=3).record
    assert record["from_generator_step"] == 3 and record["command"] == sys.argv
    for name in ("torch", "lightning", "torchmetrics", "torch-fidelity", "hydra-core", "numpy"):
        assert record["software"][name] == metadata.version(name)
    assert record["software"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert record["hardware"]["cpu_count"] > 0 and record["hardware"]["gpus"] == (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else [])
    assert json.loads(json.dumps(record)) == record  # JSON values only
    buffer = io.BytesIO()
    torch.save({"provenance": [record]}, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True)["provenance"] == [record]


def test_collect_copies_the_cached_records_so_a_runs_diff_file_name_stays_its_own():
    first = collect()
    first.record["code"]["framework"]["diff_file"] = "mine.diff"
    assert "diff_file" not in collect().record["code"]["framework"]


def test_each_dirty_checkouts_diff_is_written_and_named_in_its_record(tmp_path):
    record = {"code": {"framework": {"root": "/fw", "commit": "a" * 40, "dirty": True},
                       "own": [{"root": "/mine", "commit": "b" * 40, "dirty": False},
                               {"root": "/other", "commit": "c" * 40, "dirty": True}]}}
    provenance.write_diffs(tmp_path, Provenance(record, {"/fw": b"framework diff\n", "/other": b"other diff\xe9\n"}),
                           "gstep_0000005")
    framework, clean, other = record["code"]["framework"], *record["code"]["own"]
    assert (tmp_path / framework["diff_file"]).read_text() == "framework diff\n"
    assert (tmp_path / other["diff_file"]).read_bytes() == b"other diff\xe9\n"  # as git wrote it, not re-encoded
    assert framework["diff_file"] == "code_diffs/gstep_0000005_framework.diff" and "diff_file" not in clean
    assert sorted(p.name for p in (tmp_path / "code_diffs").iterdir()) == ["gstep_0000005_framework.diff",
                                                                          "gstep_0000005_own2.diff"]


def test_a_runs_code_is_told_piece_by_piece_and_compared_only_when_every_piece_is_known():
    from gan.utils.provenance import describe_history, history_identity

    a, b = "a" * 40, "b" * 40
    history = [{**record_with(a), "from_generator_step": 0}, {**record_with(a), "from_generator_step": 50},
               {**record_with(b, "e" * 64), "from_generator_step": 90}]
    assert describe_history(history) == (f"commit {a[:12]}, then commit {b[:12]} with uncommitted changes (diff sha256 "
                                         "eeeeeeee) from generator step 90")
    # a resume on the same code is one piece: a run resumed once equals one trained in one go (a review)
    assert history_identity(history) == (code_identity(history[0]), code_identity(history[2]))
    assert history_identity(history[:2]) == history_identity(history[:1]) != history_identity(history)
    placeholder = {"from_generator_step": 0, "code": None, "note": "not recorded"}
    assert history_identity([placeholder, history[2]]) is None and history_identity(None) is None
    assert describe_history([placeholder, history[2]]) == f"code not recorded, then {describe_code(history[2])} from generator step 90"
    assert describe_history(None) == "code not recorded"


def test_two_sets_of_runs_libraries_and_machines_are_compared_key_by_key():
    from gan.utils.provenance import environment_differences

    def start(torch_version, cpu, gpus=()):
        return {"software": {"python": "3.11.7", "torch": torch_version, "numpy": "2.4.6"},
                "hardware": {"cpu": cpu, "gpus": list(gpus), "host": "a"}}

    ours = [[start("2.14.1", "AMD EPYC")], [start("2.14.1", "AMD EPYC")]]
    assert environment_differences(ours, ours) == []
    theirs = [[start("2.13.0", "AMD EPYC", ["NVIDIA H100"])], [start("2.14.1", "AMD EPYC", ["NVIDIA H100"])]]
    assert environment_differences(ours, theirs) == ["torch 2.14.1 -> 2.13.0/2.14.1", "gpus [] -> ['NVIDIA H100']"]
    # a side that recorded nothing (checkpoints before provenance) has nothing to differ in
    assert environment_differences(ours, [None, [{"from_generator_step": 0, "code": None}]]) == []


# ------------------------------------------------------------------------------------------ a review's cases
def test_the_identity_covers_code_not_documents_results_or_a_runs_own_folder(tmp_path):
    """README edits, a benchmark appending to its results file and a Hydra run folder inside the checkout made the same
    code look like other code (a review: a resume in place was warned that its code had changed)."""
    repo = repository(tmp_path / "repo", {"model.py": "x = 1\n", "README.md": "# x\n", "results.jsonl": "{}\n",
                                          "weights.pt": "w"})
    clean = read_checkout(repo).record
    (repo / "README.md").write_text("# x, edited\n")
    (repo / "results.jsonl").write_text("{}\n{}\n")
    run = repo / "myruns" / "r1"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (run / "csv").mkdir()
    (run / "csv" / "hparams.yaml").write_text("lr: 1\n")
    after = read_checkout(repo).record
    assert (after["dirty"], after["diff_sha256"]) == (False, None) == (clean["dirty"], clean["diff_sha256"])
    assert after["untracked_files"] == 2  # listed, not code
    (repo / "weights.pt").write_text("v")  # shipped weights change what a run computes
    assert read_checkout(repo).record["dirty"] is True


def test_the_diff_is_the_same_whatever_the_users_git_config_and_applies(tmp_path):
    repo = repository(tmp_path / "repo", {"model.py": "x = 1\n"})
    (repo / "model.py").write_text("x = 2\n")
    (repo / "new.py").write_text("y = 1\n")
    plain = read_checkout(repo)
    for setting in ("diff.noprefix", "diff.mnemonicPrefix"):
        run_git(repo, "config", setting, "true")
    run_git(repo, "config", "diff.algorithm", "patience")
    configured = read_checkout(repo)
    assert configured.diff == plain.diff and configured.record["diff_sha256"] == plain.record["diff_sha256"]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (tmp_path / "changes.diff").write_bytes(configured.diff)
    run_git(clone, "apply", str(tmp_path / "changes.diff"))
    assert (clone / "model.py").read_text() == "x = 2\n" and (clone / "new.py").read_text() == "y = 1\n"


def test_a_checkout_in_a_folder_with_a_space_and_code_files_with_other_names(tmp_path):
    repo = repository(tmp_path / "my project", {"model.py": "x = 1\n"})
    (repo / "café.py").write_text("z = 1\n")  # git lists it quoted unless asked for raw names
    (repo / "latin.py").write_bytes(b"s = '\xe9'\n")  # not UTF-8
    checkout = read_checkout(repo)
    assert checkout.record["commit"] == run_git(repo, "rev-parse", "HEAD").strip()
    assert "café.py" in checkout.record["untracked"] and b"caf" in checkout.diff
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    (tmp_path / "changes.diff").write_bytes(checkout.diff)
    run_git(clone, "apply", str(tmp_path / "changes.diff"))
    assert (clone / "café.py").read_text() == "z = 1\n" and (clone / "latin.py").read_bytes() == b"s = '\xe9'\n"


def test_git_is_asked_about_the_folder_even_inside_another_repositorys_git_hook(tmp_path, monkeypatch):
    repo = repository(tmp_path / "repo", {"model.py": "x = 1\n"})
    other = repository(tmp_path / "other", {"other.py": "y = 1\n"})
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    record = read_checkout(repo).record
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert record["commit"] == run_git(repo, "rev-parse", "HEAD").strip() and record["dirty"] is False


def test_a_checkout_whose_changes_cannot_be_read_keeps_its_commit(tmp_path, monkeypatch):
    repo = repository(tmp_path / "repo", {"model.py": "x = 1\n"})
    (repo / "new.py").write_text("y = 1\n")

    def fails(root, name):
        raise RuntimeError("fatal: could not read new.py")

    monkeypatch.setattr(provenance, "new_file_diff", fails)
    record = read_checkout(repo).record
    assert record == {"root": str(repo.resolve()), "commit": run_git(repo, "rev-parse", "HEAD").strip(), "dirty": None,
                      "diff_sha256": None, "why": "changes not read: fatal: could not read new.py"}
    assert describe_code({"code": {"framework": record}}) == \
        f"commit {record['commit'][:12]} (changes not read: fatal: could not read new.py)"


def test_untracked_code_beyond_the_limit_is_counted_not_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "MAX_UNTRACKED_CODE_FILES", 3)
    repo = repository(tmp_path / "repo", {"model.py": "x = 1\n"})
    for i in range(5):
        (repo / f"m{i}.py").write_text(f"x = {i}\n")
    checkout = read_checkout(repo)
    assert checkout.diff.count(b"new file mode") == 3 and checkout.record["untracked_files"] == 5
    assert checkout.record["why"].startswith("5 untracked code files: the first 3 are recorded")


def test_two_loose_modules_of_one_folder_are_both_in_its_hash(tmp_path, monkeypatch):
    loose = tmp_path / "loose"
    loose.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.syspath_prepend(str(loose))
    hashes = []
    for version in (1, 2):
        for name in ("mod_a", "mod_b"):
            (loose / f"{name}.py").write_text(f"V = {version if name == 'mod_b' else 1}\n")
            monkeypatch.delitem(sys.modules, name, raising=False)
            importlib.import_module(name)
        (checkout,) = own_module_checkouts(["mod_a", "mod_b"], framework_root=None)
        assert checkout.record["modules"] == ["mod_a", "mod_b"]
        hashes.append(checkout.record["files_sha256"])
    assert hashes[0] != hashes[1]  # mod_b changed


def test_an_installed_framework_is_compared_by_its_version(monkeypatch):
    def installed(version):
        return {"code": {"framework": {"root": "/site-packages", "commit": None, "why": "an installed package",
                                       "version": version}, "own": []}}

    assert code_change([installed("1.0")], installed("2.0")) == \
        "it trained with version 1.0 (an installed package); this process runs version 2.0 (an installed package)"
    assert code_change([installed("1.0")], installed("1.0")) is None
    assert provenance.code_label(installed("1.0")["code"]["framework"]) == "v1.0"


def test_imports_given_as_one_string_name_its_module():
    assert list(module_names_in({"imports": "mypkg.metrics"})) == ["mypkg"]


def test_gpu_names_do_not_initialize_cuda(monkeypatch):
    """A process that initialized CUDA cannot fork ddp_fork's workers: the names come from nvidia-smi until torch
    initialized CUDA itself."""
    calls = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: calls.append(i) or "initialized")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, "NVIDIA H100\nNVIDIA H100\n", ""))
    assert provenance.gpu_names() == ["NVIDIA H100", "NVIDIA H100"] and calls == []

    def no_smi(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(subprocess, "run", no_smi)
    assert provenance.gpu_names() == ["2 CUDA device(s), names not read"] and calls == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert provenance.gpu_names() == ["initialized", "initialized"]
