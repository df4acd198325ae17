"""Run many short train.py / evaluate.py command lines from one interpreter that imported them once.

Each command line costs ~7 s of imports (Lightning alone imports torchmetrics, torchvision's models and
torch._dynamo) before it does a second of its own work, which for a refused option is all of it:
tests/test_errors.py's ~40 cases spent ~4 CPU-minutes importing. Here one interpreter imports the entry
points and forks a child per command line; the child is the entry point as a user starts it (`__main__`,
argv, environment, working directory, its own stdout and stderr, its exit status, atexit handlers) except
for one thing: what the imports print happened before the fork and is not in its output. Keep one case
of a kind as a real subprocess to see that.

    python -m tests.preloaded < jobs.json   # [{"name", "argv", "env", "stdout", "stderr"}, ...]

prints {name: exit status}; `run_preloaded` does it from a test and returns CompletedProcess objects.
"""
from __future__ import annotations

import atexit
import json
import os
import runpy
import subprocess
import sys
import traceback
from pathlib import Path

PARALLEL = 4  # children at once; most of a case's time is spent in its child


def exit_status(code) -> int:
    """What the interpreter makes of SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_child(job: dict) -> None:
    """The entry point as `python <argv>` runs it, in this forked child, which it never returns from."""
    status = 1
    try:
        for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        os.environ.clear()
        os.environ.update(job["env"])
        sys.argv = list(job["argv"])
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
            status = 0
        except SystemExit as exited:
            status = exit_status(exited.code)
        except BaseException:  # the interpreter prints an uncaught exception and exits with 1
            traceback.print_exc()
            status = 1
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def serve(jobs: list[dict]) -> dict[str, int]:
    waiting, running, statuses = list(jobs), {}, {}
    while waiting or running:
        while waiting and len(running) < PARALLEL:
            job = waiting.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                run_child(job)
            running[pid] = job["name"]
        pid, wait_status = os.wait()
        statuses[running.pop(pid)] = os.waitstatus_to_exitcode(wait_status)
    return statuses


def run_preloaded(cases: dict[str, tuple[list[str], dict[str, str]]], cwd: Path, folder: Path,
                  timeout: float = 600) -> dict[str, subprocess.CompletedProcess]:
    """Run {name: (argv, environment)} from one preloaded interpreter started in cwd; outputs land in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [{"name": name, "argv": argv, "env": env, "stdout": str(folder / f"{name}.out"),
             "stderr": str(folder / f"{name}.err")} for name, (argv, env) in cases.items()]
    server = subprocess.run([sys.executable, "-m", "tests.preloaded"], cwd=cwd, input=json.dumps(jobs),
                            capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert server.returncode == 0, server.stderr[-3000:]
    statuses = json.loads(server.stdout.strip().splitlines()[-1])
    return {job["name"]: subprocess.CompletedProcess(job["argv"], statuses[job["name"]], Path(job["stdout"]).read_text(),
                                                     Path(job["stderr"]).read_text()) for job in jobs}


if __name__ == "__main__":
    jobs = json.load(sys.stdin)
    import evaluate  # noqa: F401  (the imports every child then shares)
    import train  # noqa: F401

    print(json.dumps(serve(jobs)))
