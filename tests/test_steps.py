"""Step arithmetic shared by the configs and the callbacks."""
import pytest

from gan.utils.steps import interval_crossed, optimizer_steps


@pytest.mark.parametrize("g_steps,n_critic,n_generator,expected", [(100, 1, 1, 200), (100, 5, 1, 600), (100, 5, 2, 350), (5, 1, 2, 9)])
def test_optimizer_steps_counts_whole_iterations(g_steps, n_critic, n_generator, expected):
    assert optimizer_steps(g_steps, n_critic, n_generator) == expected


def test_interval_crossed_equals_modulo_for_unit_steps():
    assert [s for s in range(1, 31) if interval_crossed(s, s - 1, 10)] == [10, 20, 30]


def test_interval_crossed_catches_multiples_jumped_over():
    steps = list(range(0, 31, 3))  # 3 generator updates per batch: 0, 3, ..., 30
    fired = [b for a, b in zip(steps, steps[1:]) if interval_crossed(b, a, 10)]
    assert fired == [12, 21, 30]
    assert not interval_crossed(5, None, 0)  # 0 = off
