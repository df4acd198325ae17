"""Step arithmetic. The framework counts generator updates; Lightning counts every optimizer step."""
from __future__ import annotations

import math


def optimizer_steps(generator_steps: int, n_critic: int, n_generator: int = 1) -> int:
    """Lightning's step count for ``generator_steps`` generator updates, each iteration being ``n_critic``
    D updates then ``n_generator`` G updates (whole iterations: rounded up)."""
    iterations = math.ceil(int(generator_steps) / int(n_generator))
    return iterations * (int(n_critic) + int(n_generator))


def interval_crossed(step: int, previous: int | None, every: int) -> bool:
    """Whether generator step ``step`` is past a multiple of ``every`` that ``previous`` was not.

    Equivalent to ``step % every == 0`` when steps advance one at a time, and still true when one training
    batch makes several generator updates (``model.n_generator`` > 1) and jumps over the multiple."""
    return every > 0 and step > 0 and step // every > (previous or 0) // every
