"""GANProgressBar: counts GAN iterations, redraws every refresh_rate iterations but not more often than its spacing."""
import io
from types import SimpleNamespace

import pytest

from gan.callbacks import GANProgressBar
from gan.callbacks import progress


class RecordingBar(SimpleNamespace):
    def refresh(self):
        self.drawn.append(self.n)

    def set_postfix(self, metrics, refresh=True):
        self.postfixes += 1
        if refresh:
            self.refresh()


def test_redraws_every_refresh_rate_iterations_at_most_once_per_spacing_and_always_at_the_end(monkeypatch):
    clock = {"now": 0.0}
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock["now"])
    bar = GANProgressBar(refresh_rate=2, min_seconds_between_refreshes=0.1)
    shown = RecordingBar(n=0, total=9, disable=False, drawn=[], postfixes=0, fp=io.StringIO())
    bar._train_progress_bar = shown
    bar.get_metrics = lambda trainer, module: {}
    module = SimpleNamespace(iterations_trained=0)
    for iteration in range(1, 10):
        clock["now"] = 0.03 * iteration  # an iteration every 30 ms
        module.iterations_trained = iteration
        bar.on_gan_iteration_end(None, module)
    # due at 2, 4, 6, 8 (refresh_rate) and 9 (the total); 4 is 60 ms after 2 and 8 is 60 ms after 6: skipped
    assert shown.drawn == [2, 6, 9] and shown.postfixes == 3


def test_counts_the_iterations_of_this_fit_after_a_resume():
    bar = GANProgressBar(refresh_rate=1, min_seconds_between_refreshes=0)
    shown = RecordingBar(n=0, total=3, disable=False, drawn=[], postfixes=0, fp=io.StringIO())
    bar._train_progress_bar = shown
    bar.get_metrics = lambda trainer, module: {}
    bar._iterations_before_fit = 4  # what on_train_epoch_start reads from a resumed module: 4 iterations trained
    for iterations in (5, 6, 7):
        bar.on_gan_iteration_end(None, SimpleNamespace(iterations_trained=iterations))
    assert shown.drawn == [1, 2, 3]


def test_a_negative_refresh_rate_is_refused_and_zero_turns_the_bar_off():
    from gan.utils.errors import ConfigError

    # Lightning took any rate <= 0 as "no bar": -1 turned it off without a word
    with pytest.raises(ConfigError, match=r"^callbacks.progress_bar.refresh_rate=-1: expected an integer >= 0 \(0: no bar\)$"):
        GANProgressBar(refresh_rate=-1)
    assert GANProgressBar(refresh_rate=0).refresh_rate == 0


@pytest.mark.parametrize("on_terminal", [False, True])
def test_each_redraw_writes_the_bar_once_and_ends_its_line_in_a_file(monkeypatch, on_terminal):
    """A redraw wrote its line twice (a refresh, then tqdm's set_postfix redrawing by itself): twice the cost, and
    every line twice in a log file; and in a file a log line written next began on the bar's line, where
    `grep '^\\['` missed it. A real tqdm bar: one line per redraw, the last with the metrics, each ended in a file."""
    from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

    class Output(io.StringIO):
        def isatty(self):
            return on_terminal

    monkeypatch.setattr(progress.sys, "stdout", Output())
    out = io.StringIO()
    bar = GANProgressBar(refresh_rate=1, min_seconds_between_refreshes=0)
    bar._train_progress_bar = Tqdm(total=3, file=out, desc="Epoch 0", mininterval=0, bar_format="{desc} {n_fmt}/{total_fmt}{postfix}")
    bar.get_metrics = lambda trainer, module: {"d_loss": 0.5}
    for iterations in (1, 2, 3):
        bar.on_gan_iteration_end(None, SimpleNamespace(iterations_trained=iterations))
    assert out.getvalue().count("\n") == (0 if on_terminal else 3)
    lines = [line.strip() for line in out.getvalue().split("\r") if line.strip()]
    assert lines == ["Epoch 0 0/3", "Epoch 0 1/3, d_loss=0.500", "Epoch 0 2/3, d_loss=0.500",
                     "Epoch 0 3/3, d_loss=0.500"]


def test_redraws_are_spaced_by_10_s_when_the_output_goes_to_a_file_and_by_0_1_s_on_a_terminal(monkeypatch):
    """Every redraw stays in a file (a SLURM job's log): at tqdm's 0.1 s the bar filled a tiny run's log at ~45 kB a
    minute. The spacing is decided by where the standard output goes, unless it is set."""

    from gan.utils.errors import ConfigError

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    clock = {"now": 0.0}
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock["now"])

    def drawn_at(stdout, **options):
        monkeypatch.setattr(progress.sys, "stdout", stdout)
        bar = GANProgressBar(refresh_rate=1, **options)
        shown = RecordingBar(n=0, total=400, disable=False, drawn=[], postfixes=0, fp=io.StringIO())
        bar._train_progress_bar = shown
        bar.get_metrics = lambda trainer, module: {}
        for iteration in range(1, 401):
            clock["now"] = iteration / 16  # an iteration every 62.5 ms (exact in binary): 25 s in all
            bar.on_gan_iteration_end(None, SimpleNamespace(iterations_trained=iteration))
        return shown.drawn

    assert drawn_at(io.StringIO()) == [1, 161, 321, 400]  # 10 s apart, and the end
    assert drawn_at(Terminal()) == list(range(1, 401, 2)) + [400]  # 0.1 s apart
    assert drawn_at(io.StringIO(), min_seconds_between_refreshes=5) == [1, 81, 161, 241, 321, 400]
    assert drawn_at(Terminal(), min_seconds_between_refreshes=0) == list(range(1, 401))
    with pytest.raises(ConfigError, match=r"^callbacks.progress_bar.min_seconds_between_refreshes=-1: expected a number >= 0"):
        GANProgressBar(min_seconds_between_refreshes=-1)


@pytest.mark.parametrize("ending", ["epoch_end", "exception"])
def test_a_run_stopped_between_two_redraws_ends_its_bar_on_the_iterations_it_trained(monkeypatch, ending):
    """Into a file redraws are 10 s apart: a run stopped early (a health stop, max_time; a signal's save) ended its bar
    on the last redraw, 10/3000 for 730 iterations trained (an audit)."""
    clock = {"now": 0.0}
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock["now"])
    bar = GANProgressBar(refresh_rate=1, min_seconds_between_refreshes=10)
    shown = RecordingBar(n=0, total=3000, disable=False, drawn=[], postfixes=0, fp=io.StringIO())
    bar._train_progress_bar = shown
    bar.get_metrics = lambda trainer, module: {}
    module = SimpleNamespace(iterations_trained=0)
    for iteration in range(1, 731):
        clock["now"] = iteration / 100  # 7.3 s in all: one redraw, at the first iteration
        module.iterations_trained = iteration
        bar.on_gan_iteration_end(None, module)
    assert shown.drawn == [1]
    if ending == "epoch_end":
        bar.on_train_epoch_end(None, module)
    else:
        bar.on_exception(None, module, SystemExit(130))
    assert shown.drawn[-1] == 730
