"""M-CURL sequence masking: which positions to mask and the BERT 80/10/10 replacement of their features."""

from __future__ import annotations

import torch

from ._sampling import as_device, uniform

KEEP, ZERO, RANDOM = 0, 1, 2


def frame_mask(
    batch: int,
    length: int,
    p: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bool (B, L), True = selected: each position independently with probability ``p``.

    A sequence with nothing selected gets the position of its smallest draw (uniform over the
    positions, no extra randomness), so every sequence has a prediction target. This nudges the
    per-position rate slightly above ``p`` when (1 - p)^L is not negligible.
    """
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"selection probability p must be in [0, 1], got {p}")
    if length < 1:
        raise ValueError(f"sequence length must be >= 1, got {length}")
    device = as_device(device)
    draws = uniform((batch, length), generator, device)
    selected = draws < p
    empty = ~selected.any(dim=1, keepdim=True)
    first = torch.arange(length, device=device) == draws.argmin(dim=1, keepdim=True)
    return selected | (empty & first)


def bert_replacement_plan(
    selected: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    zero: float = 0.8,
    random: float = 0.1,
) -> torch.Tensor:
    """Int64 codes shaped like ``selected``: 0 keep, 1 zero, 2 replace by a random other item.

    Selected positions get ZERO with probability ``zero``, RANDOM with ``random`` and KEEP with the
    rest (BERT's 80/10/10); unselected positions are always KEEP. Keeping some inputs intact stops
    the model from learning that "selected" means "corrupted".
    """
    if selected.dtype != torch.bool:
        raise ValueError(f"selected must be a bool tensor, got {selected.dtype}")
    if not (0.0 <= zero <= 1.0 and 0.0 <= random <= 1.0 and zero + random <= 1.0 + 1e-12):
        raise ValueError(f"need 0 <= zero, random and zero + random <= 1, got zero={zero}, random={random}")
    draws = uniform(tuple(selected.shape), generator, selected.device, torch.float64)
    codes = torch.where(draws < zero, ZERO, torch.where(draws < zero + random, RANDOM, KEEP))
    return torch.where(selected, codes, KEEP).long()


def apply_bert_replacement(
    features: torch.Tensor, selected_plan: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply a replacement plan to (B, L, ...) features: zero, a random other item, or keep.

    "Other item" is drawn uniformly among all B * L positions of the batch except the position
    itself (taken from the original features). Differentiable with respect to ``features``.
    """
    if features.dim() < 2 or tuple(selected_plan.shape) != tuple(features.shape[:2]):
        raise ValueError(
            f"plan shape {tuple(selected_plan.shape)} must equal the (B, L) leading dims of features "
            f"{tuple(features.shape)}"
        )
    items = features.shape[0] * features.shape[1]
    flat = features.reshape(items, -1)
    codes = selected_plan.reshape(items).to(features.device)
    if items < 2:
        if bool((codes == RANDOM).any()):
            raise ValueError("a random replacement needs at least two items in the batch of sequences")
        partner = torch.zeros(items, dtype=torch.long, device=features.device)
    else:
        draws = uniform((items,), generator, features.device, torch.float64)
        partner = (draws * (items - 1)).long().clamp_(max=items - 2)
        own = torch.arange(items, device=features.device)
        partner = partner + (partner >= own).long()
    codes = codes[:, None]
    out = torch.where(codes == RANDOM, flat[partner], flat)
    out = torch.where(codes == ZERO, torch.zeros_like(flat), out)
    return out.reshape(features.shape)


def mask_observations(
    observations: torch.Tensor, plan: torch.Tensor, random_observations: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply a replacement plan to whole (B, L, C, H, W) observations before the CNN (official M-CURL).

    ZERO blanks the whole stacked observation; RANDOM puts in the next of ``random_observations``
    (one per RANDOM position, in row-major order; the caller draws them from the whole replay buffer,
    as the official code does); KEEP leaves it. Returns a new tensor; the input is not modified.
    """
    if observations.dim() < 3 or tuple(plan.shape) != tuple(observations.shape[:2]):
        raise ValueError(
            f"plan shape {tuple(plan.shape)} must equal the (B, L) leading dims of observations "
            f"{tuple(observations.shape)}"
        )
    out = observations.clone()
    codes = plan.to(observations.device)
    out[codes == ZERO] = 0
    n_random = int((codes == RANDOM).sum())
    if n_random:
        if random_observations is None or random_observations.shape[0] != n_random:
            got = None if random_observations is None else random_observations.shape[0]
            raise ValueError(f"the plan asks for {n_random} random observations, got {got}")
        out[codes == RANDOM] = random_observations.to(out.dtype)
    return out
