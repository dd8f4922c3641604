"""A small ResNet (basic blocks) for 28-96 px images: MoCo v2 pretraining and saliency networks.

The stem is a 3x3 conv (CIFAR-style) rather than ImageNet's 7x7 + max-pool, so a 32 px image still
ends in a 4x4 map with the default three downsampling stages; ``stem_stride=2`` suits 64-96 px.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..modules.patch import to_float_pixels


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """Images (B, C, H, W) -> pooled features (B, widths[-1] * pool**2).

    Stage i has ``blocks[i]`` basic blocks of width ``widths[i]``; every stage after the first
    halves the map. SCDA saliency reads ``conv_features`` (the final (B, widths[-1], h, w) map)
    and feeds it to ``head``. ``pool`` = 1 is global average pooling; ``pool`` = p average-pools
    the final map to p x p cells and flattens them, which keeps a coarse spatial layout (on small,
    centred images such as Fashion-MNIST the layout carries much of the class information that
    global pooling throws away). Input convention: ``to_float_pixels``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        widths: Sequence[int] = (64, 128, 256, 512),
        blocks: Sequence[int] = (2, 2, 2, 2),
        stem_stride: int = 1,
        pool: int = 1,
    ) -> None:
        super().__init__()
        widths, blocks = [int(w) for w in widths], [int(b) for b in blocks]
        if not widths or len(widths) != len(blocks) or min(blocks) < 1 or min(widths) < 1:
            raise ValueError(
                f"widths {widths} and blocks {blocks} must be non-empty, equally long and positive"
            )
        if pool < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride}")
        self.total_stride = stem_stride * 2 ** (len(widths) - 1)
        if image_size < self.total_stride:
            raise ValueError(
                f"image_size {image_size} is too small for {len(widths)} stages (total stride "
                f"{self.total_stride}); use larger images, fewer stages or stem_stride=1"
            )
        self.init_kwargs = dict(
            in_channels=in_channels, image_size=image_size, widths=widths, blocks=blocks,
            stem_stride=stem_stride, pool=pool,
        )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        in_ch = widths[0]
        for i, (width, count) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(in_ch if j == 0 else width, width, 2 if (i > 0 and j == 0) else 1)
                      for j in range(count)]
            stages.append(nn.Sequential(*layers))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.pool = int(pool)
        self.feature_dim = widths[-1] * self.pool**2
        self.image_size = image_size
        side = image_size
        for _ in range(len(widths) - 1 + (stem_stride == 2)):
            side = (side + 1) // 2
        self.conv_shape = (widths[-1], side, side)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for block in self.modules():
            if isinstance(block, BasicBlock):  # zero-init last BN: each block starts as identity
                nn.init.zeros_(block.bn2.weight)

    def conv_features(self, images: torch.Tensor) -> torch.Tensor:
        """Final conv map (B, widths[-1], h, w)."""
        if images.dim() != 4:
            raise ValueError(f"ResNetSmall expects (B, C, H, W) images, got {tuple(images.shape)}")
        if min(images.shape[-2:]) < self.total_stride:
            raise ValueError(
                f"images of size {tuple(images.shape[-2:])} are smaller than the total stride {self.total_stride}"
            )
        return self.stages(self.stem(to_float_pixels(images)))

    def head(self, conv_map: torch.Tensor) -> torch.Tensor:
        """Pooled features of a final conv map: global average (pool=1) or p x p cells, flattened."""
        if self.pool == 1:
            return conv_map.mean(dim=(2, 3))
        return F.adaptive_avg_pool2d(conv_map, self.pool).flatten(1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        conv_map = self.conv_features(images)
        return self.head(conv_map)
