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


def test_timed_commands_are_the_readme_commands():
    """benchmarks/readme_commands.py times README lines: each must be in the README as written (with
    the measured run standing in for a run-dir placeholder), so a stated time belongs to its command."""
    import json
    import sys

    root = Path(__file__).parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        from readme_commands import COMMANDS
    finally:
        sys.path.pop(0)
    text = (root / "README.md").read_text()
    for cmd in COMMANDS:
        shown = re.sub(r"\{\w+\}", "RUN_DIR", cmd.line)
        assert shown in text, f"README lacks the timed command {shown!r}"
    measured = json.loads((root / "benchmarks" / "results" / "readme_commands.json").read_text())["commands"]
    for name, row in measured.items():
        assert row["command"] in [c.line for c in COMMANDS], name
