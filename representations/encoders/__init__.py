"""Encoders: CURL conv, small ResNet, ViT, video ViT, ST-GCN; built by name, saved with their kwargs."""

from .conv import ConvEncoder, conv_output_size
from .registry import ENCODERS, build_encoder, encoder_payload, input_normalisation, load_pretrained, save_encoder
from .resnet import ResNetSmall
from .stgcn import (
    HUMANOID_BONES,
    HUMANOID_JOINT_NAMES,
    NTU_BONES,
    NTU_CENTER,
    NTU_JOINT_NAMES,
    SKELETON_GRAPHS,
    STGCN,
    graph_partitions,
    normalize_adjacency,
    ntu_rgbd_adjacency,
    skeleton_adjacency,
)
from .video_vit import VideoViT, VideoViTOutput
from .vit import ViT, ViTOutput, gather_tokens

__all__ = [
    "ENCODERS",
    "HUMANOID_BONES",
    "HUMANOID_JOINT_NAMES",
    "NTU_BONES",
    "NTU_CENTER",
    "NTU_JOINT_NAMES",
    "SKELETON_GRAPHS",
    "STGCN",
    "ConvEncoder",
    "ResNetSmall",
    "VideoViT",
    "VideoViTOutput",
    "ViT",
    "ViTOutput",
    "build_encoder",
    "conv_output_size",
    "encoder_payload",
    "gather_tokens",
    "graph_partitions",
    "input_normalisation",
    "load_pretrained",
    "normalize_adjacency",
    "ntu_rgbd_adjacency",
    "save_encoder",
    "skeleton_adjacency",
]
