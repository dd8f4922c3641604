import os

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests share 2 cores; keep torch from oversubscribing them."""
    torch.set_num_threads(1)
    yield
