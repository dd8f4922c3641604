"""Body-part masks for skeleton sequences (CML): hide whole limbs so the model must infer them."""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence

import torch

from ._sampling import as_device, round_counts, select_random, uniform

# NTU RGB+D 25-joint layout. The dataset docs number joints from 1; indices here are 0-based
# (doc number - 1):
#   0 spine base, 1 spine middle, 2 neck, 3 head, 20 spine at the shoulders  -> torso (with head)
#   4 left shoulder, 5 left elbow, 6 left wrist, 7 left hand, 21 left hand tip, 22 left thumb -> left arm
#   8 right shoulder, 9 right elbow, 10 right wrist, 11 right hand, 23 right hand tip, 24 right thumb
#   12 left hip, 13 left knee, 14 left ankle, 15 left foot -> left leg
#   16 right hip, 17 right knee, 18 right ankle, 19 right foot -> right leg
NTU_BODY_PARTS: Mapping[str, tuple[int, ...]] = types.MappingProxyType(
    {
        "torso": (0, 1, 2, 3, 20),
        "left_arm": (4, 5, 6, 7, 21, 22),
        "right_arm": (8, 9, 10, 11, 23, 24),
        "left_leg": (12, 13, 14, 15),
        "right_leg": (16, 17, 18, 19),
    }
)

# The DeepMimic humanoid (HUMANOID_JOINT_NAMES in encoders/stgcn.py, 18 joints):
#   0 root, 1 chest, 2 neck, 3 head -> torso;  8 right shoulder, 9 elbow, 10 wrist -> right arm;
#   15 left shoulder, 16 elbow, 17 wrist -> left arm;  4 right hip, 5 knee, 6 ankle, 7 foot -> right leg;
#   11 left hip, 12 knee, 13 ankle, 14 foot -> left leg
HUMANOID_BODY_PARTS: Mapping[str, tuple[int, ...]] = types.MappingProxyType(
    {
        "torso": (0, 1, 2, 3),
        "left_arm": (15, 16, 17),
        "right_arm": (8, 9, 10),
        "left_leg": (11, 12, 13, 14),
        "right_leg": (4, 5, 6, 7),
    }
)
# skeleton name -> (body parts, number of joints); the names match encoders.stgcn.SKELETON_GRAPHS
SKELETON_PARTS: Mapping[str, tuple[Mapping[str, tuple[int, ...]], int]] = types.MappingProxyType(
    {"ntu": (NTU_BODY_PARTS, 25), "humanoid": (HUMANOID_BODY_PARTS, 18)}
)

Parts = str | Mapping[str, Sequence[int]] | Sequence[Sequence[int]] | Sequence[int] | torch.Tensor


def part_membership(parts: Parts, num_joints: int, device: torch.device | None = None) -> torch.Tensor:
    """Bool (num_parts, num_joints) from a part->joints map, a list of joint lists, or joint->part ids.

    A flat sequence/1-D tensor of length ``num_joints`` is read as the part id of each joint
    (negative = belongs to no part, never masked). A string names a built-in skeleton
    (``SKELETON_PARTS``: "ntu", "humanoid").
    """
    if isinstance(parts, str):
        if parts not in SKELETON_PARTS:
            raise ValueError(f"unknown skeleton {parts!r}; use one of {', '.join(SKELETON_PARTS)}")
        name, (parts, joints) = parts, SKELETON_PARTS[parts]
        if joints != num_joints:
            raise ValueError(f"the {name!r} skeleton has {joints} joints, not {num_joints}")
    if isinstance(parts, Mapping):
        groups = [list(map(int, v)) for v in parts.values()]
    elif isinstance(parts, torch.Tensor) or (len(parts) > 0 and all(isinstance(p, int) for p in parts)):
        ids = torch.as_tensor(parts, dtype=torch.long).flatten()
        if ids.numel() != num_joints:
            raise ValueError(f"a joint->part map needs {num_joints} entries, got {ids.numel()}")
        num_parts = int(ids.max()) + 1 if ids.numel() and int(ids.max()) >= 0 else 0
        member = ids[None, :] == torch.arange(num_parts)[:, None]
        return member.to(device)
    else:
        groups = [list(map(int, g)) for g in parts]
    member = torch.zeros(len(groups), num_joints, dtype=torch.bool)
    for i, joints in enumerate(groups):
        if any(j < 0 or j >= num_joints for j in joints):
            raise ValueError(f"part {i} has joints {joints} outside [0, {num_joints})")
        member[i, joints] = True
    return member.to(device)


def body_part_mask(
    batch: int,
    num_parts_to_mask: int | tuple[int, int],
    *,
    parts: Parts = NTU_BODY_PARTS,
    num_joints: int = 25,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Bool (B, J), True = masked joint: the joints of ``num_parts_to_mask`` random parts per sample.

    ``num_parts_to_mask`` is an int or an inclusive (low, high) range drawn per sample; parts are
    chosen without replacement, uniformly. Apply the mask over all frames and coordinates.
    """
    device = as_device(device)
    member = part_membership(parts, num_joints, device)
    num_parts = member.shape[0]
    if isinstance(num_parts_to_mask, (tuple, list)):
        low, high = int(num_parts_to_mask[0]), int(num_parts_to_mask[1])
    else:
        low = high = int(num_parts_to_mask)
    if not 0 <= low <= high <= num_parts:
        raise ValueError(f"num_parts_to_mask must lie in [0, {num_parts}] (low <= high), got {num_parts_to_mask!r}")
    if low == high:
        counts = round_counts(float(low), 1, batch, device)
    else:
        draws = uniform((batch,), generator, device, torch.float64)
        counts = (low + (draws * (high - low + 1)).long()).clamp_(max=high)
    chosen = select_random(uniform((batch, num_parts), generator, device), counts)
    return (chosen[:, :, None] & member[None]).any(dim=1)
