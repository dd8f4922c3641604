"""Cost of each mask generator relative to one ConvEncoder forward on the same RL batch.

The masks run every update next to the encoder, so they must stay cheap: the goal is < 5% of a
ConvEncoder forward (batch 512, 9x84x84 uint8). Writes benchmarks/results/masks.json and prints a
table. Usage: python benchmarks/masks.py [--device cpu] [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from representations.core.atomic import atomic_write_json
from representations.encoders.conv import ConvEncoder
from representations.masking import (
    QUERY_RECIPE,
    RECIPE_DRAWS,
    apply_bert_replacement,
    apply_patch_mask,
    attention_tube_mask,
    bert_replacement_plan,
    body_part_mask,
    frame_mask,
    hard_negative_mask,
    high_pass,
    noise_recipe_fill,
    random_patch_mask,
    random_tube_mask,
    saliency_guided_mask,
    scda_foreground,
    split_visible_groups,
)

GOAL = 0.05
BATCH = 512


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(cases: dict[str, Callable[[], object]], device: torch.device, rounds: int,
                        warmup: int = 2) -> dict[str, float]:
    """Median wall time (ms) of each callable; every round runs all of them once, so a load change
    on a shared machine hits the encoder and the masks alike."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(warmup + rounds):
        for name, fn in cases.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if round_index >= warmup:
                times[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in times.items()}


def build_cases(
    device: torch.device, obs: torch.Tensor, conv_map: torch.Tensor
) -> dict[str, tuple[str, Callable[[], object]]]:
    """name -> (what it does, zero-argument callable) for every generator, at RL / method sizes."""
    g = torch.Generator(device=device).manual_seed(0)
    fg = scda_foreground(conv_map)
    grid = fg.shape[-1]
    query_mask = saliency_guided_mask(fg, (0.05, 0.25), generator=g)
    high_passed = high_pass(obs)
    channel_cells = saliency_guided_mask(fg.repeat_interleave(obs.shape[1], 0), (0.05, 0.25), generator=g)
    channel_cells = channel_cells.view(BATCH, obs.shape[1], grid, grid)
    seq_features = torch.randn(16, 32, 50, device=device)  # M-CURL: 16 sequences x 32 steps = 512 steps
    selected = frame_mask(16, 32, 0.5, generator=g, device=device)
    plan = bert_replacement_plan(selected, generator=g)
    attention = torch.rand(BATCH, 6, 8, 196, device=device)  # video ViT: 8 frames x 14x14 tokens
    return {
        "random_patch_mask[84x84]": (
            "pixel grid, ratio U[0.05,0.25]",
            lambda: random_patch_mask(BATCH, 84, (0.05, 0.25), generator=g, device=device),
        ),
        f"random_patch_mask[{grid}x{grid}]": (
            "conv-map grid, ratio U[0.05,0.25]",
            lambda: random_patch_mask(BATCH, grid, (0.05, 0.25), generator=g, device=device),
        ),
        "random_patch_mask[12x12]": (
            "7-px cells, ratio 0.5",
            lambda: random_patch_mask(BATCH, 12, 0.5, generator=g, device=device),
        ),
        "scda_foreground": (
            f"channel-sum saliency of the 32x{grid}x{grid} conv map", lambda: scda_foreground(conv_map)
        ),
        "saliency_guided_mask": (
            f"{grid}x{grid} SCDA foreground, U[0.05,0.25]",
            lambda: saliency_guided_mask(fg, (0.05, 0.25), generator=g),
        ),
        "hard_negative_mask": (
            f"{grid}x{grid} SCDA foreground, U[0.4,0.7]",
            lambda: hard_negative_mask(fg, (0.4, 0.7), generator=g),
        ),
        "apply_patch_mask[zero]": (
            f"uint8 obs, {grid}x{grid} saliency mask", lambda: apply_patch_mask(obs, query_mask, "zero")
        ),
        "apply_patch_mask[mean]": (
            "uint8 obs, per-image channel mean", lambda: apply_patch_mask(obs, query_mask, "mean")
        ),
        "apply_patch_mask[blur]": (
            "uint8 obs, Gaussian k31 sigma10 (fast_blur: half resolution)",
            lambda: apply_patch_mask(obs, query_mask, "blur"),
        ),
        "apply_patch_mask[noise]": (
            "float high-pass obs, Gaussian noise (channel mean/std)",
            lambda: apply_patch_mask(high_passed, query_mask, "noise", generator=g),
        ),
        "noise_recipe_fill": (
            "float high-pass obs, official recipe (focal / spatial / channel-wise, N(0, 0.18))",
            lambda: noise_recipe_fill(high_passed, channel_cells, QUERY_RECIPE,
                                      torch.rand(BATCH, RECIPE_DRAWS, generator=g, device=device),
                                      torch.randn(obs.shape[1], 12, 12, generator=g, device=device)),
        ),
        "high_pass": ("x - blur(x), k11 sigma5, uint8 -> float", lambda: high_pass(obs)),
        "frame_mask+bert_plan": (
            "16 seq x 32, p=0.5, 80/10/10",
            lambda: bert_replacement_plan(frame_mask(16, 32, 0.5, generator=g, device=device), generator=g),
        ),
        "apply_bert_replacement": ("16x32x50 CNN features", lambda: apply_bert_replacement(seq_features, plan, g)),
        "random_tube_mask": (
            "8 frames x 196 tokens, U[0.5,0.9]",
            lambda: random_tube_mask(BATCH, 8, (14, 14), (0.5, 0.9), generator=g, device=device),
        ),
        "attention_tube_mask": (
            "attention 6 heads x 8 frames x 196, 90% masked, top 60%",
            lambda: attention_tube_mask(attention, 0.9, 0.6, generator=g),
        ),
        "split_visible_groups": (
            "196 tokens, 90% masked",
            lambda: split_visible_groups(BATCH, 196, 0.9, generator=g, device=device),
        ),
        "body_part_mask": (
            "NTU 25 joints, 1-3 parts", lambda: body_part_mask(BATCH, (1, 3), generator=g, device=device)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (after 2 warm-up rounds)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "masks.json"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    encoder = ConvEncoder(in_channels=9, image_size=84).to(device).eval()
    obs = torch.randint(0, 256, (BATCH, 9, 84, 84), dtype=torch.uint8, device=device)
    with torch.no_grad():
        conv_map = encoder.conv_features(obs)

    def forward() -> None:
        with torch.no_grad():
            encoder(obs)

    cases = build_cases(device, obs, conv_map)
    load_before = os.getloadavg()[0]
    timings = interleaved_medians(
        {"ConvEncoder.forward": forward, **{name: fn for name, (_, fn) in cases.items()}}, device, args.repeats
    )
    encoder_ms = timings["ConvEncoder.forward"]

    rows = []
    for name, (what, _) in cases.items():
        fraction = timings[name] / encoder_ms
        rows.append(
            {"generator": name, "setting": what, "ms": round(timings[name], 3),
             "fraction_of_encoder": round(fraction, 4), "under_goal": fraction < GOAL}
        )
    result = {
        "device": str(device) if device.type != "cpu" else f"cpu ({platform.processor() or platform.machine()})",
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": BATCH,
        "obs_shape": [9, 84, 84],
        "encoder_forward_ms": round(encoder_ms, 3),
        "repeats": args.repeats,
        "timing": "median of interleaved rounds (encoder forward under no_grad and every generator once per round)",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "goal_fraction": GOAL,
        "generators": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)

    print(f"ConvEncoder forward, batch {BATCH}x9x84x84 on {result['device']}: {encoder_ms:.1f} ms "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)")
    print(f"{'generator':<28} {'ms':>9} {'% of fwd':>9}  setting")
    for row in rows:
        flag = "" if row["under_goal"] else "  <- over 5%"
        print(f"{row['generator']:<28} {row['ms']:>9.2f} {100 * row['fraction_of_encoder']:>8.2f}%  "
              f"{row['setting']}{flag}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
