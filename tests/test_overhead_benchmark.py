"""benchmarks/overhead.py: its bare loop does the work of the framework's loop, so the ratio measures overhead."""
import pytest
import torch

from benchmarks import overhead


def optimizer_steps(optimizer: torch.optim.Optimizer) -> set[int]:
    return {int(state["step"]) for state in optimizer.state.values()}


@pytest.mark.parametrize("model", ["wgan_gp", "dcgan"])
def test_bare_loop_takes_the_framework_s_optimizer_steps_on_the_same_networks(tmp_path, model):
    from train import train

    warmup, steps = 1, 2
    # one iteration per batch: the clock ticks at batch ends
    cfg = overhead.compose(model, "tiny", "core", warmup + steps, tmp_path / "core", [], iterations_per_batch=1)
    window = overhead.Window(warmup, steps, torch.device("cpu"))
    _, objects = train(cfg, callbacks=[overhead.Clock(window)])
    module = objects["module"]
    framework = dict(zip(["generator", "discriminator"], module.optimizers(use_pl_optimizer=False)))

    bare_window = overhead.Window(warmup, steps, torch.device("cpu"))
    bare_cfg = overhead.compose(model, "tiny", "bare", warmup + steps, tmp_path / "bare", [])
    bare = overhead.bare_loop(bare_cfg, bare_window)

    # the bare iteration under Lightning's loop and the framework's loader: the same steps again
    lightning_window = overhead.Window(warmup, steps, torch.device("cpu"))
    lightning_cfg = overhead.compose(model, "tiny", "lightning", warmup + steps, tmp_path / "lightning", [])
    in_lightning = overhead.lightning_loop(lightning_cfg, lightning_window)

    expected = {"discriminator": {cfg.model.n_critic * 3}, "generator": {3}}  # 3 iterations
    for name, steps_taken in expected.items():
        assert optimizer_steps(bare["optimizers"][name]) == optimizer_steps(framework[name]) == steps_taken
        assert optimizer_steps(in_lightning.iteration.optimizers[name]) == steps_taken
    assert in_lightning.generator_steps == 3 and in_lightning.trainer.global_step == 0  # raw steps: Lightning's counter stays
    # its loader yielded n_critic real batches per training batch, as the framework's does
    assert in_lightning.trainer.datamodule.batches_per_training_step == cfg.model.n_critic

    # three iterations in one Lightning batch: the same optimizer steps, one batch, every step on the clock
    several_window = overhead.Window(warmup, steps, torch.device("cpu"))
    several_cfg = overhead.compose(model, "tiny", "lightning", warmup + steps, tmp_path / "several", [])
    several = overhead.lightning_loop(several_cfg, several_window, iterations_per_batch=3)
    for name, steps_taken in expected.items():
        assert optimizer_steps(several.iteration.optimizers[name]) == steps_taken
    assert several.generator_steps == 3 and several.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 1
    assert several.trainer.datamodule.batches_per_training_step == 3 * cfg.model.n_critic
    assert several_window.result()["ms_per_step"] > 0

    # and the framework at the shipped auto (10 iterations per batch for the core's logging cadence of 50), timed
    # per iteration by the iteration clock; the floor's auto takes the same number
    framework_window = overhead.Window(warmup, steps, torch.device("cpu"))
    framework_cfg = overhead.compose(model, "tiny", "core", warmup + steps, tmp_path / "framework", [])
    assert framework_cfg.model.iterations_per_batch == "auto"
    _, framework_objects = train(framework_cfg, callbacks=[overhead.IterationClock(framework_window)])
    assert framework_objects["module"].iterations_per_batch == 10
    floor = overhead.lightning_loop(overhead.compose(model, "tiny", "lightning", warmup + steps, tmp_path / "floor", []),
                                    overhead.Window(warmup, steps, torch.device("cpu")), iterations_per_batch="auto")
    assert floor.iterations_per_batch == 10 and floor.trainer.fit_loop.epoch_loop.batch_progress.total.completed == 1
    for name, optimizer in zip(["generator", "discriminator"], framework_objects["module"].optimizers(use_pl_optimizer=False)):
        assert optimizer_steps(optimizer) == expected[name]
    assert framework_objects["trainer"].fit_loop.epoch_loop.batch_progress.total.completed == 1
    assert "median_inside_batch_ms" not in framework_window.result()  # no split with several iterations per batch
    for name in ("generator", "discriminator"):
        bare_opt, framework_opt = bare["optimizers"][name], framework[name]
        assert type(bare_opt) is type(framework_opt) and bare_opt.defaults == framework_opt.defaults
        assert [p.shape for p in bare[name].parameters()] == [p.shape for p in getattr(module, name).parameters()]
    for result in (window.result(), bare_window.result(), lightning_window.result()):
        assert result["ms_per_step"] > 0 and result["cpu_ms_per_step"] > 0


def test_bare_loop_refuses_work_it_does_not_do(tmp_path):
    cfg = overhead.compose("wgan", "tiny", "bare", 2, tmp_path, [])
    with pytest.raises(NotImplementedError, match="weight clipping"):
        overhead.bare_loop(cfg, overhead.Window(1, 1, torch.device("cpu")))


def test_count_calls_records_the_python_calls_per_step_of_each_variant(tmp_path, capsys):
    """--count-calls: each run's row holds the cProfile count over the timed window divided by its steps; the
    bare loop's count is the same in two rounds (it measures code, not the machine), and the framework does
    more calls than the bare loop."""
    import json

    out = tmp_path / "rows.jsonl"
    overhead.main(["--model", "dcgan", "--repeats", "2", "--steps", "4", "--warmup", "2", "--count-calls",
                   "--iterations-per-batch", "1", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines() if '"kind": "run"' in line]
    calls = {}
    for row in rows:
        calls.setdefault(row["variant"], []).append(row["python_calls_per_step"])
    assert len(calls["bare"]) == 2 and calls["bare"][0] == calls["bare"][1] > 0
    # Lightning's loop adds calls to the bare iteration, and the framework adds its own to those
    assert calls["bare"][0] < min(calls["lightning"]) and max(calls["lightning"]) < min(calls["core"])
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("| dcgan |") and "x |" in line and "ms" not in line)
    cells = [cell.strip() for cell in line.split("|")[1:-1]]  # model, 4 counts, then the ratios
    assert [float(c.replace(",", "")) for c in cells[1:5]] == pytest.approx(
        [calls[v][-1] for v in overhead.VARIANTS], abs=0.5)
    ratios = dict(zip(overhead.RATIOS, (float(c.rstrip("x")) for c in cells[5:])))
    assert ratios[("core", "bare")] == pytest.approx(calls["core"][-1] / calls["bare"][-1], abs=0.006)
    assert ratios[("core", "lightning")] == pytest.approx(calls["core"][-1] / calls["lightning"][-1], abs=0.006)
    # the framework's rows split each iteration into time inside Lightning's batch and between batches
    for row in rows:
        split = ("median_inside_batch_ms", "median_between_batches_ms")
        if row["variant"] == "bare":
            assert not any(key in row for key in split) and row["iterations_per_batch"] is None
        else:
            assert all(row[key] > 0 for key in split) and row["iterations_per_batch"] == 1


def test_window_splits_each_timed_iteration_into_inside_and_between_batches(monkeypatch):
    """Batch i runs from its start stamp to the next end-of-step stamp; the gap before it is Lightning's loop."""
    clock = iter([0.0, 0.001, 0.004, 0.0055, 0.0085, 0.010, 0.013])  # end, start, end, start, end, start, end
    monkeypatch.setattr(overhead.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(overhead.time, "process_time", lambda: 0.0)
    window = overhead.Window(warmup=1, steps=3, device=torch.device("cpu"))
    window.tick(0)  # before the window: no stamp
    window.batch_started(0)
    for step in (1, 2, 3):
        window.tick(step)
        window.batch_started(step)
    window.tick(4)
    window.batch_started(4)  # after the window: no stamp (the clock would run out)
    result = window.result()
    assert result["median_inside_batch_ms"] == pytest.approx(3.0)  # 3, 3, 3 ms
    assert result["median_between_batches_ms"] == pytest.approx(1.5)  # 1, 1.5, 1.5 ms
    assert result["ms_per_step"] == pytest.approx(13.0 / 3)


@pytest.mark.parametrize("option", [["--iterations-per-batch", "0"], ["--iterations-per-batch", "some"], ["--steps", "1"]])
def test_bad_options_are_refused_before_any_run(option, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        overhead.main([*option, "--out", str(tmp_path / "rows.jsonl")])
    assert stopped.value.code == 2 and option[0] in capsys.readouterr().err
    assert not (tmp_path / "rows.jsonl").exists()


def test_a_folder_as_the_output_file_is_refused_before_any_run(tmp_path, capsys):
    """A folder as --out ended a 5-minute benchmark with a traceback when it came to write, the rows lost."""
    with pytest.raises(SystemExit) as stopped:
        overhead.main(["--out", str(tmp_path)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(  # after the program name argparse knows
        f": error: --out {tmp_path} is a folder; expected a JSON lines file to append to, e.g. "
        f"{tmp_path / 'overhead.jsonl'}")


def test_hook_timer_attributes_the_time_of_each_callback_s_hooks_inside_the_window(tmp_path):
    """A callback that busy-waits 2 ms in its per-iteration hook gets ~2 ms per generator step; one that does
    nothing gets almost none; hooks before the window opens are not counted."""
    import time

    import lightning.pytorch as pl

    from train import train

    class Slow(pl.Callback):
        def on_gan_iteration_end(self, trainer, pl_module):
            end = time.perf_counter() + 0.002
            while time.perf_counter() < end:
                pass

    class Idle(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            pass

    warmup, steps = 3, 4
    window = overhead.Window(warmup, steps, torch.device("cpu"))
    timer = overhead.HookTimer(window)
    cfg = overhead.compose("dcgan", "tiny", "core", warmup + steps, tmp_path, [], iterations_per_batch=1)
    train(cfg, callbacks=[overhead.Clock(window), timer, Slow(), Idle()])
    costs = timer.ms_per_step()
    assert costs["Slow"] >= 2.0 and costs["Idle"] < costs["Slow"] / 10
    assert sum(costs.values()) < window.result()["ms_per_step"]  # a part of the window's time


def test_hook_ops_counts_the_operators_each_callback_runs_per_generator_step(tmp_path):
    """--hook-ops: a callback that runs one in-place add per iteration (and a view, which launches no kernel) is
    counted at exactly one operator per generator step; one that runs none has none; the module's own operators
    are not attributed to any callback."""
    import lightning.pytorch as pl

    from train import train

    class Adds(pl.Callback):
        def __init__(self):
            self.total = torch.zeros(2)

        def on_gan_iteration_end(self, trainer, pl_module):
            self.total.add_(1.0)
            self.total.view(1, 2)

    class Idle(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            pass

    warmup, steps = 3, 4
    window = overhead.Window(warmup, steps, torch.device("cpu"))
    timer = overhead.HookTimer(window, count_ops=True)
    adds = Adds()
    cfg = overhead.compose("dcgan", "tiny", "core", warmup + steps, tmp_path, [], iterations_per_batch=1)
    train(cfg, callbacks=[overhead.Clock(window), timer, adds, Idle()])
    ops = timer.ops_per_step()
    assert ops["Adds"] == {"add_": 1.0} and ops.get("Idle", {}) == {}
    assert float(adds.total[0]) == warmup + steps  # every iteration added, counted (in the window) or not
    rows = [{"model": "dcgan", "variant": "core", "hook_ops_per_step": ops}]
    assert "| dcgan | core | Adds | 1.00 | add_ 1 |" in overhead.hook_ops_table(rows, ["dcgan"])


@pytest.mark.parametrize("model", ["wgan_gp", "dcgan"])
def test_iteration_ab_runs_the_module_and_the_bare_iteration_on_the_same_networks_and_optimizers(tmp_path, model):
    from types import SimpleNamespace

    args = SimpleNamespace(mode="tiny", overrides=[], repeats=2)
    row = overhead.iteration_ab(model, args, tmp_path, calls=3)
    n_critic = 5 if model == "wgan_gp" else 1
    # every block of either path updated the same two optimizers: ((1 warm-up + 2 blocks) x 3 calls + the 10 whose
    # operators were counted) x 2 paths
    assert row["generator_updates"] == 38 and row["discriminator_updates"] == 38 * n_critic
    assert row["difference_us"] == pytest.approx(row["module_us"] - row["bare_us"])
    assert row["ratio"] == pytest.approx(row["module_us"] / row["bare_us"])
    assert row["bare_us_range"][0] <= row["bare_us"] <= row["bare_us_range"][1]
    # the only kernels the module adds to the bare iteration's are its last D step's two logged scores, D's mean
    # real and fake score (sigmoid and mean for dcgan's non-saturating loss; the raw mean for a Wasserstein critic)
    from hydra.utils import instantiate

    cfg = overhead.compose(model, "tiny", "core", 1, tmp_path / "loss", [])
    loss = instantiate(cfg.loss)
    logits = torch.randn(8, 1)
    score_ops = overhead.ops_per_call(lambda: (loss.score(logits), loss.score(logits)), 1)
    assert row["extra_ops"] == {name: float(n) for name, n in sorted(score_ops.items())}
    assert row["module_ops"] - row["bare_ops"] == sum(score_ops.values()) and row["bare_ops"] > 100
