"""Argument checks shared by every env factory, so bad sizes fail before any simulator starts."""

from __future__ import annotations

MIN_IMAGE_SIZE = 16
"""Smallest frame side accepted; below it the CURL/DrQ conv encoder has nothing left to convolve."""


def check_env_args(
    *,
    image_size: int,
    frame_stack: int,
    action_repeat: int,
    episode_length: int,
    min_image_size: int = MIN_IMAGE_SIZE,
    from_pixels: bool = True,
) -> None:
    """Raise ``ValueError`` with a one-line reason for any out-of-range env argument."""
    floor = max(MIN_IMAGE_SIZE, int(min_image_size))
    if from_pixels and int(image_size) < floor:
        raise ValueError(
            f"image_size={image_size} is too small: pixel observations need at least {floor}x{floor} "
            f"(the encoder's minimum input; render larger, e.g. image_size=100 with an 84 crop)"
        )
    if int(frame_stack) < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    if int(action_repeat) < 1:
        raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
    if int(episode_length) < 1:
        raise ValueError(f"episode_length must be >= 1 (in env steps), got {episode_length}")
