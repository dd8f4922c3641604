"""Pretraining methods: one ``nn.Module`` per method, ``forward(batch) -> (loss, metrics)``."""

from .base import INPUT_FILTERS, Batch, Objective, encoder_features, encoder_scale, pooled
from .cml import CML, SkeletonDecoder
from .masked_moco import FILL_MODES, MoCoMask, MoCoSaliency, fill_settings
from .micl import MiCL
from .moco import MoCo, moco_logits

METHODS: dict[str, type[Objective]] = {
    "moco": MoCo,
    "moco_mask": MoCoMask,
    "moco_saliency": MoCoSaliency,
    "micl": MiCL,
    "cml": CML,
}

__all__ = [
    "CML",
    "FILL_MODES",
    "INPUT_FILTERS",
    "METHODS",
    "Batch",
    "MiCL",
    "MoCo",
    "MoCoMask",
    "MoCoSaliency",
    "Objective",
    "SkeletonDecoder",
    "encoder_features",
    "encoder_scale",
    "fill_settings",
    "moco_logits",
    "pooled",
]
