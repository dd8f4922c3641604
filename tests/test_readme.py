"""The README's library example runs as written (docs that match the code)."""

import re
from pathlib import Path

import torch

from agents.augment import random_crop


def test_readme_library_example_runs():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    block = re.search(r"A CURL-style loss.*?```python\n(.*?)```", text, re.S)
    assert block, "README library example not found"
    namespace = {"obs": torch.randint(0, 256, (8, 9, 100, 100), dtype=torch.uint8),
                 "crop": lambda x: random_crop(x, 84)}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102
    assert torch.isfinite(namespace["loss"]).item()
    assert namespace["W"].grad is not None
