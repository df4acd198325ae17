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


def drive(monkeypatch, bar, total, iterations, seconds_per_iteration):
    """``bar`` shown as a RecordingBar of ``total``, through ``iterations`` GAN iterations on a clock that advances
    ``seconds_per_iteration`` each; returns (the recording bar, the module)."""
    clock = {"now": 0.0}
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock["now"])
    shown = RecordingBar(n=0, total=total, disable=False, drawn=[], postfixes=0, fp=io.StringIO())
    bar._train_progress_bar = shown
    bar.get_metrics = lambda trainer, module: {}
    module = SimpleNamespace(iterations_trained=0)
    for iteration in range(1, iterations + 1):
        clock["now"] = seconds_per_iteration * iteration
        module.iterations_trained = iteration
        bar.on_gan_iteration_end(None, module)
    return shown, module


def test_redraws_every_refresh_rate_iterations_at_most_once_per_spacing_and_always_at_the_end(monkeypatch):
    shown, _ = drive(monkeypatch, GANProgressBar(refresh_rate=2, min_seconds_between_refreshes=0.1), 9, 9, 0.03)
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

    def drawn_at(stdout, **options):
        monkeypatch.setattr(progress.sys, "stdout", stdout)
        # an iteration every 62.5 ms (exact in binary): 25 s in all
        return drive(monkeypatch, GANProgressBar(refresh_rate=1, **options), 400, 400, 1 / 16)[0].drawn

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
    bar = GANProgressBar(refresh_rate=1, min_seconds_between_refreshes=10)
    shown, module = drive(monkeypatch, bar, 3000, 730, 0.01)  # 7.3 s in all: one redraw, at the first iteration
    assert shown.drawn == [1]
    if ending == "epoch_end":
        bar.on_train_epoch_end(None, module)
    else:
        bar.on_exception(None, module, SystemExit(130))
    assert shown.drawn[-1] == 730
