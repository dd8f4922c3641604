"""Picture of saliency-guided masking on real images: docs/saliency_masking.png.

Rows: Fashion-MNIST test images and DeepMind Control frames (cheetah-run, walker-walk; the newest
of the 3 stacked frames is shown, masks act on all 9 channels). Columns: the image, the frozen
network's saliency (channel sum of its last conv map), the SCDA foreground on the 7x7 grid, the
masked query under each fill (high-pass recipe, blur, mean) and the hard negative (foreground
masked; high-pass recipe and blur). Views are un-augmented so the masks can be compared with the
image.

    python benchmarks/saliency_figure.py [--fmnist-net RUN/encoder.pt] [--dmc-net RUN/encoder.pt]

Without a network file the row's saliency comes from an untrained encoder (what the key-encoder
source sees at step 0), and the title says so.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from representations.data import AugmentConfig, BatchAugment, load_fashion_mnist  # noqa: E402
from representations.encoders import ConvEncoder, load_pretrained  # noqa: E402
from representations.objectives import MoCoSaliency, Views, encode_with_map, normalise  # noqa: E402
from representations.objectives.base import PIXEL_MEAN, PIXEL_STD  # noqa: E402

FILLS = ("highpass", "blur", "mean")


def _net(path: str | None, channels: int, size: int) -> tuple[torch.nn.Module, str]:
    if path:
        return load_pretrained(path).eval(), f"frozen net: {Path(path).parent.name}"
    torch.manual_seed(0)
    return ConvEncoder(in_channels=channels, image_size=size, feature_dim=64).eval(), "untrained net"


def _masked(images: torch.Tensor, net: torch.nn.Module, fill: str) -> tuple[Views, object]:
    """One MoCoSaliency masking pass on un-augmented views (query view = key view = the image)."""
    x = images.float() / 255.0
    torch.manual_seed(0)
    online = ConvEncoder(in_channels=images.shape[1], image_size=images.shape[-1], feature_dim=16)
    gens = {"augment": torch.Generator().manual_seed(0), "mask": torch.Generator().manual_seed(1)}
    obj = MoCoSaliency(online, BatchAugment(AugmentConfig(size=images.shape[-1])), fill=fill, saliency_encoder=net,
                       mask_ratio=(0.25, 0.25), dim=8, hidden_dim=16, queue_size=16, generators=gens)
    prepared = obj.prepare(x)
    rows = torch.arange(x.shape[0])
    views = Views(x, x, prepared, prepared, None, None, rows, x.shape[0])  # type: ignore[arg-type]
    with torch.no_grad():
        return views, obj.mask_views(views)


def _show(x: torch.Tensor, domain: str) -> torch.Tensor:
    """(C, H, W) model input -> (H, W[, 3]) displayable in [0, 1] (newest RGB frame of a stack)."""
    x = x[-3:] if x.shape[0] >= 3 else x
    if domain == "highpass":
        x = 0.5 + 1.5 * x * PIXEL_STD  # signed residual around mid-grey
    elif domain == "normalised":
        x = x * PIXEL_STD + PIXEL_MEAN
    x = x.clamp(0, 1)
    return x[0] if x.shape[0] == 1 else x.permute(1, 2, 0)


def figure(rows: list[tuple[str, torch.Tensor, torch.nn.Module, str]], out: Path) -> None:
    columns = ["image", "saliency", "foreground (7x7)", "query: high-pass", "query: blur", "query: mean",
               "hard neg.: high-pass", "hard neg.: blur"]
    n = sum(images.shape[0] for _, images, _, _ in rows)
    fig, axes = plt.subplots(n, len(columns), figsize=(1.6 * len(columns), 1.7 * n))
    r = 0
    for title, images, net, label in rows:
        masked = {fill: _masked(images, net, fill) for fill in FILLS}
        with torch.no_grad():
            _, conv_map = encode_with_map(net, normalise(images.float() / 255.0))
        saliency = F.interpolate(conv_map.sum(1, keepdim=True), size=images.shape[-2:], mode="bilinear")[:, 0]
        for i in range(images.shape[0]):
            views, hp = masked["highpass"]
            cells = [_show(images[i].float() / 255.0, "pixels"), saliency[i], hp.query_foreground[i].float(),
                     _show(hp.query[i], "highpass"), _show(masked["blur"][1].query[i], "normalised"),
                     _show(masked["mean"][1].query[i], "normalised"), _show(hp.hard[i], "highpass"),
                     _show(masked["blur"][1].hard[i], "normalised")]
            for c, (ax, cell) in enumerate(zip(axes[r], cells)):
                ax.imshow(cell.numpy(), cmap="gray" if cell.dim() == 2 and c != 1 else "inferno",
                          vmin=0 if c != 1 else None, vmax=1 if c != 1 else None, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(columns[c], fontsize=8)
            axes[r][0].set_ylabel(f"{title}\n({label})", fontsize=7)
            r += 1
    fig.suptitle("Saliency-guided masking (Chin et al. 2024): query masks 25% of the cells split by "
                 "foreground area; the hard negative masks 40-70% of the foreground", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmnist-net", default=None, help="encoder.pt of a Fashion-MNIST run (1 channel, 28 px)")
    parser.add_argument("--dmc-net", default=None, help="encoder.pt of a DMC-frames run (9 channels, 84 px)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "saliency_masking.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fmnist = load_fashion_mnist(split="test").images[[0, 1, 7]]
    from envs.collect import collect_frames

    frames = [torch.from_numpy(collect_frames(task, 30, image_size=84, seed=0)["images"][-1:]).clone()
              for task in ("cheetah-run", "walker-walk")]
    fm_net, fm_label = _net(args.fmnist_net, 1, 28)
    dmc_net, dmc_label = _net(args.dmc_net, 9, 84)
    figure([("Fashion-MNIST", fmnist, fm_net, fm_label),
            ("DMC", torch.cat(frames), dmc_net, dmc_label)], Path(args.out))


if __name__ == "__main__":
    main()
