"""Building blocks shared by encoders and objectives: EMA, heads, positions, patches, transformers."""

from .ema import EMA, cosine_momentum, ema_update, linear_momentum
from .heads import DINOHead, MLPHead
from .patch import MaskToken, PatchEmbed, TubeletEmbed, to_float_pixels
from .positions import resize_grid_positions, resize_sequence_positions, sinusoidal_positions
from .sequence import SequenceTransformer, inverse_sqrt_warmup
from .transformer import Attention, Block, DropPath, drop_path_rates

__all__ = [
    "EMA",
    "Attention",
    "Block",
    "DINOHead",
    "DropPath",
    "MLPHead",
    "MaskToken",
    "PatchEmbed",
    "SequenceTransformer",
    "TubeletEmbed",
    "cosine_momentum",
    "drop_path_rates",
    "ema_update",
    "inverse_sqrt_warmup",
    "linear_momentum",
    "resize_grid_positions",
    "resize_sequence_positions",
    "sinusoidal_positions",
    "to_float_pixels",
]
