"""docs/parity.md's image-pretraining tables state the defaults: every row keyed by a config key
must hold the value the composed ``mcrl-pretrain method=<method>`` config holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

DOC = Path(__file__).resolve().parents[1] / "docs" / "parity.md"


def _section(name: str) -> list[tuple[str, str]]:
    """(key, first backticked value of the "ours" column) for keyed rows of ``## name``."""
    text = DOC.read_text()
    start = text.index(f"\n## {name}\n")
    end = text.find("\n## ", start + 1)
    rows = []
    for line in text[start:end if end > 0 else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.fullmatch(r"`[\w.]+`", cells[0]):
            continue
        value = re.search(r"`([^`]*)`", cells[2])
        assert value, f"row {cells[0]} has no backticked value in the 'ours' column"
        rows.append((cells[0].strip("`"), value.group(1)))
    return rows


def _compose(overrides: list[str]) -> dict:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="configs", version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="pretrain", overrides=overrides), resolve=True)


@pytest.mark.parametrize("method,overrides", [("moco_saliency", ["method=moco_saliency"]),
                                              ("micl", ["method=micl", "encoder=vit"]),
                                              ("m2crl", ["method=m2crl", "data=video", "encoder=video_vit"])])
def test_parity_table_matches_the_defaults(method, overrides):
    cfg = _compose(overrides)
    rows = _section(method)
    assert len(rows) >= 3
    for key, value in rows:
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == yaml.safe_load(value), (key, node, value)


def test_only_video_data_chooses_the_probe_l2_by_source():
    """The probe holdout default comes from the data config: the video clips' latest-per-source holdout,
    the random one elsewhere (images have no sources)."""
    assert (_compose([])["eval"]["probe_holdout"], _compose([])["eval"]["probe_gap"]) == ("random", 0)
    video = _compose(["method=m2crl", "data=video", "encoder=video_vit"])["eval"]
    assert (video["probe_holdout"], video["probe_gap"]) == ("latest", 2)
