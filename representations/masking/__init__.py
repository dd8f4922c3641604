"""Mask generators (True = masked) for every method in the suite; batched, seeded, any device.

patch: grid masks, fills, blur/high-pass; saliency: SCDA foreground, balanced and hard-negative
masks; frames: M-CURL selection + BERT replacement; tubes: random / attention-guided video tubes;
skeleton: NTU / humanoid body parts; groups: MiCL visible-token split.
"""

from .frames import KEEP, RANDOM, ZERO, apply_bert_replacement, bert_replacement_plan, frame_mask
from .groups import split_visible_groups
from .patch import (
    FILLS,
    NEGATIVE_RECIPE,
    QUERY_RECIPE,
    RECIPE_DRAWS,
    NoiseRecipe,
    apply_patch_mask,
    fast_blur,
    gaussian_blur,
    gaussian_kernel1d,
    high_pass,
    noise_recipe_fill,
    random_patch_mask,
    upsample_mask,
)
from .saliency import hard_negative_mask, saliency_guided_mask, scda_foreground
from .skeleton import HUMANOID_BODY_PARTS, NTU_BODY_PARTS, SKELETON_PARTS, body_part_mask, part_membership
from .tubes import attention_tube_mask, random_tube_mask

__all__ = [
    "FILLS",
    "HUMANOID_BODY_PARTS",
    "NEGATIVE_RECIPE",
    "QUERY_RECIPE",
    "RECIPE_DRAWS",
    "NoiseRecipe",
    "fast_blur",
    "noise_recipe_fill",
    "KEEP",
    "NTU_BODY_PARTS",
    "RANDOM",
    "SKELETON_PARTS",
    "ZERO",
    "apply_bert_replacement",
    "apply_patch_mask",
    "attention_tube_mask",
    "bert_replacement_plan",
    "body_part_mask",
    "frame_mask",
    "gaussian_blur",
    "gaussian_kernel1d",
    "hard_negative_mask",
    "high_pass",
    "part_membership",
    "random_patch_mask",
    "random_tube_mask",
    "saliency_guided_mask",
    "scda_foreground",
    "split_visible_groups",
    "upsample_mask",
]
