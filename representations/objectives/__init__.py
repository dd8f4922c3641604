"""Pretraining methods: one ``nn.Module`` per method, ``forward(batch) -> (loss, metrics)``."""

from .base import INPUT_FILTERS, Batch, Objective, encode_with_map, encoder_features, normalise, pooled
from .cml import CML, SkeletonDecoder
from .m2crl import M2CRL
from .masked_moco import FILL_MODES, MoCoMask, MoCoSaliency, fill_settings
from .micl import MiCL
from .moco import Masked, MoCo, Views

METHODS: dict[str, type[Objective]] = {
    "moco": MoCo,
    "moco_mask": MoCoMask,
    "moco_saliency": MoCoSaliency,
    "micl": MiCL,
    "cml": CML,
    "m2crl": M2CRL,
}

__all__ = [
    "CML",
    "FILL_MODES",
    "INPUT_FILTERS",
    "METHODS",
    "M2CRL",
    "Batch",
    "Masked",
    "MiCL",
    "MoCo",
    "MoCoMask",
    "MoCoSaliency",
    "Objective",
    "SkeletonDecoder",
    "Views",
    "encode_with_map",
    "encoder_features",
    "fill_settings",
    "normalise",
    "pooled",
]
