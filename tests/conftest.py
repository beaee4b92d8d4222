import os
import random

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _seed_global_generators():
    """Every test starts from the same global RNG state, so a test that draws test points with
    the global generators sees the same points on every machine and in every order."""
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture
def work_outcomes(monkeypatch):
    """``watch(module)`` wraps the ``run_reporting`` a worker module calls and returns a list that
    gets ``"cancelled"`` or ``"completed"`` for every piece of work as it ends: a test can then
    show that a shutdown cancelled a computation instead of waiting it out, without a clock."""

    def watch(module):
        outcomes: list[str] = []
        original = module.run_reporting

        def spy(request, work, fail, expected, cancelled):
            def tracked():
                try:
                    work()
                except cancelled:
                    outcomes.append("cancelled")
                    raise
                outcomes.append("completed")

            original(request, tracked, fail, expected, cancelled)

        monkeypatch.setattr(module, "run_reporting", spy)
        return outcomes

    return watch
