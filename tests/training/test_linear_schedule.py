"""The "linear" schedule (ViLT / CFITR): 10% linear warm-up, then linear decay to zero."""

from __future__ import annotations

import pytest

from rsitr.training.optim import warmup_linear


def test_linear_schedule_warms_up_over_a_tenth_then_decays_to_zero():
    factor = warmup_linear(100, warmup_steps=10)  # warmup_share 0.1 of 100 steps
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.5)
    assert factor(100) == pytest.approx(0.0)
    values = [factor(step) for step in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
