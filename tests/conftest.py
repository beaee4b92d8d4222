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
