"""docs/parity.md: every config key in the RL tables holds the value of the "ours" column."""

import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

DOC = Path(__file__).resolve().parents[1] / "docs" / "parity.md"
METHODS = ("sac", "curl", "mcurl", "curl_saliency")


def tables() -> dict[str, list[tuple[str, str, str, str]]]:
    out: dict[str, list[tuple[str, str, str, str]]] = {}
    section = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            out[section] = []
        elif section and line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] != "setting":
                out[section].append(tuple(cells))  # type: ignore[arg-type]
    return out


def composed(agent: str) -> dict:
    with initialize_config_module("configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"agent={agent}"])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def lookup(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize("method", METHODS)
def test_every_config_row_matches_the_composed_defaults(method):
    rows = tables()[method]
    assert rows, f"docs/parity.md has no table under ## {method}"
    cfg = composed(method)
    checked = 0
    for setting, official, ours, _reason in rows:
        key = re.fullmatch(r"`([\w.]+)`", setting)
        if not key:
            assert official and ours, f"{method}: row {setting!r} needs an official and an ours value"
            continue
        value = re.match(r"`([^`]+)`", ours)
        assert value, f"{method}: {setting} must give ours as a `literal`"
        want = yaml.safe_load(value.group(1))
        got = lookup(cfg, key.group(1))
        assert got == pytest.approx(want) if isinstance(want, float) else got == want, (method, setting, got, want)
        checked += 1
    assert checked >= 3


def same_value(official: str, ours: str) -> bool:
    if ours == "same" or ours.strip("`") in official:
        return True
    try:
        mine = float(yaml.safe_load(ours.strip("`")))
    except (TypeError, ValueError, yaml.YAMLError):
        return False
    return any(float(tok) == mine for tok in re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", official))


def test_every_difference_has_a_reason():
    for method in METHODS:
        for setting, official, ours, reason in tables()[method]:
            assert same_value(official, ours) or reason, f"{method}: {setting} differs ({official} vs {ours}) " \
                "without a reason"
