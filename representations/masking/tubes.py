"""Video tube masks: one spatial mask shared by all frames, random or guided by teacher attention."""

from __future__ import annotations

import torch

from ._sampling import Ratio, as_device, check_ratio, draw_fractions, round_counts, select_random, uniform


def _num_tokens(grid_or_tokens: int | tuple[int, int]) -> int:
    if isinstance(grid_or_tokens, int):
        n = grid_or_tokens
    else:
        n = int(grid_or_tokens[0]) * int(grid_or_tokens[1])
    if n < 1:
        raise ValueError(f"need at least one spatial token, got {grid_or_tokens!r}")
    return n


def random_tube_mask(
    batch: int,
    frames: int,
    grid_or_tokens: int | tuple[int, int],
    ratio: Ratio,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bool (B, T, N), True = masked: round(ratio * N) random spatial tokens, the same in every frame.

    ``grid_or_tokens`` is N (tokens per frame) or an (h, w) token grid (N = h * w, row-major).
    Masking whole tubes stops the model from copying a token from the neighbouring frame.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    n = _num_tokens(grid_or_tokens)
    device = as_device(device)
    fraction = draw_fractions(batch, ratio, generator, device)
    counts = round_counts(fraction, n, batch, device)
    spatial = select_random(uniform((batch, n), generator, device), counts)
    return spatial[:, None, :].expand(batch, frames, n).contiguous()


def attention_tube_mask(
    attention: torch.Tensor,
    ratio: Ratio,
    top_fraction: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bool (B, T, N) tube mask guided by attention (B, heads, T, N), e.g. teacher [CLS] attention.

    Attention is averaged over heads and frames; the N - round(ratio * N) visible tokens are drawn
    uniformly among the round(top_fraction * N) most attended tokens, and everything else is masked
    in every frame (M2CRL: ratio 0.9, top_fraction 0.6). Keeping the visible tokens on salient
    regions makes reconstruction and distillation about the lesion, not the background.
    """
    if attention.dim() != 4:
        raise ValueError(f"attention must be (B, heads, T, N), got shape {tuple(attention.shape)}")
    check_ratio(top_fraction, "top_fraction")
    batch, _, frames, n = attention.shape
    device = attention.device
    fraction = draw_fractions(batch, ratio, generator, device)
    visible = n - round_counts(fraction, n, batch, device)
    n_top = round(float(top_fraction) * n)
    if int(visible.max()) > n_top:
        raise ValueError(
            f"{int(visible.max())} visible tokens cannot be drawn from the top {n_top} of {n} tokens; "
            "raise top_fraction or the mask ratio"
        )
    score = attention.detach().float().mean(dim=(1, 2))
    top = torch.zeros(batch, n, dtype=torch.bool, device=device)
    if n_top > 0:
        top.scatter_(1, torch.topk(score, n_top, dim=1).indices, True)
    keep = select_random(uniform((batch, n), generator, device), visible, top)
    return (~keep)[:, None, :].expand(batch, frames, n).contiguous()
