"""The CURL / SAC-AE / DrQ pixel encoder: a small conv stack, a linear layer and a LayerNorm."""

from __future__ import annotations

import torch
from torch import nn

from ..modules.patch import to_float_pixels


def conv_output_size(image_size: int, num_layers: int) -> int:
    """Spatial side of the last conv map: first conv 3x3 stride 2, the rest 3x3 stride 1, no padding."""
    size = (image_size - 3) // 2 + 1
    return size - 2 * (num_layers - 1)


class ConvEncoder(nn.Module):
    """Pixels -> feature vector.

    Input convention of every encoder (``to_float_pixels``): uint8 pixels (the RL agents' frames) are
    divided by 255 here and nowhere else; floats are used as given. ``forward(obs, detach=True)`` cuts
    the graph after the conv stack, which is how the actor uses the shared encoder (the conv weights
    are trained by the critic and auxiliary losses only). Saliency reads ``conv_features`` and feeds
    the map to ``head``, so no state is kept between calls.
    """

    def __init__(
        self,
        in_channels: int = 9,
        image_size: int = 84,
        num_layers: int = 4,
        num_filters: int = 32,
        feature_dim: int = 50,
        layer_norm: bool = True,
        tanh: bool = False,
    ) -> None:
        super().__init__()
        side = conv_output_size(image_size, num_layers)
        if num_layers < 1 or side < 1:
            raise ValueError(
                f"image_size {image_size} is too small for {num_layers} conv layers "
                f"(the last conv map would be {side}x{side}); use a larger image_size or fewer layers"
            )
        self.init_kwargs = dict(
            in_channels=in_channels, image_size=image_size, num_layers=num_layers,
            num_filters=num_filters, feature_dim=feature_dim, layer_norm=layer_norm, tanh=tanh,
        )
        layers: list[nn.Module] = [nn.Conv2d(in_channels, num_filters, 3, stride=2), nn.ReLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(num_filters, num_filters, 3, stride=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.conv_shape = (num_filters, side, side)
        self.fc = nn.Linear(num_filters * side * side, feature_dim)
        self.norm = nn.LayerNorm(feature_dim) if layer_norm else nn.Identity()
        self.tanh = tanh
        self.feature_dim = feature_dim
        self.image_size = image_size

    def conv_features(self, obs: torch.Tensor) -> torch.Tensor:
        """Last conv map (B, filters, h, w); uint8 pixels are scaled to [0, 1] (``to_float_pixels``)."""
        if obs.shape[-1] != self.image_size or obs.shape[-2] != self.image_size:
            raise ValueError(
                f"encoder expects {self.image_size}x{self.image_size} images, got {tuple(obs.shape[-2:])}"
            )
        return self.convs(to_float_pixels(obs))

    def head(self, conv_map: torch.Tensor) -> torch.Tensor:
        """fc -> LayerNorm (-> tanh) on a conv map."""
        out = self.norm(self.fc(conv_map.flatten(1)))
        return torch.tanh(out) if self.tanh else out

    def forward(self, obs: torch.Tensor, detach: bool = False) -> torch.Tensor:
        conv_map = self.conv_features(obs)
        if detach:
            conv_map = conv_map.detach()
        return self.head(conv_map)

    @torch.no_grad()
    def fold_input_normalisation(self, mean: float, std: float) -> None:
        """Make the encoder take [0, 1] pixels where it was trained on (x - mean) / std.

        conv(W, (x - m) / s) + b = conv(W / s, x) + b - (m / s) * sum(W): exact, because the
        convolutions are unpadded (every output sees only real pixels).
        """
        first: nn.Conv2d = self.convs[0]
        first.bias -= (mean / std) * first.weight.sum(dim=(1, 2, 3))
        first.weight /= std

    def copy_conv_weights_from(self, other: ConvEncoder) -> None:
        """Tie this encoder's conv layers to ``other``'s (the actor shares the critic's convs)."""
        for mine, theirs in zip(self.convs, other.convs):
            if isinstance(mine, nn.Conv2d):
                mine.weight = theirs.weight
                mine.bias = theirs.bias
