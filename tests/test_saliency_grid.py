"""curl_saliency: conv cells reach the masking grid through their receptive-field centres."""

import pytest
import torch

from representations.encoders.conv import ConvEncoder
from representations.masking.patch import upsample_mask
from representations.objectives.saliency_curl import grid_foreground, grid_pooling_matrix, receptive_field_centres


@pytest.mark.parametrize(("image", "layers"), [(84, 4), (32, 2)])
def test_receptive_field_centres_match_the_encoder_gradient(image, layers):
    """Independent reference: the input pixels a last-layer cell depends on, found by autograd."""
    enc = ConvEncoder(in_channels=1, image_size=image, num_layers=layers, num_filters=2)
    with torch.no_grad():  # positive weights keep every ReLU open, so the whole receptive field shows
        for conv in enc.convs[::2]:
            conv.weight.abs_().add_(0.01)
            conv.bias.fill_(0.1)
    side = enc.conv_shape[1]
    centres = receptive_field_centres(side, layers)
    for j in (0, side // 2, side - 1):
        x = torch.rand(1, 1, image, image, requires_grad=True)
        enc.conv_features(x)[0, :, j, j].sum().backward()
        rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
        assert (rows.min() + rows.max()) / 2 == centres[j]  # the middle of the receptive field


def test_a_salient_conv_cell_lands_in_the_mask_cell_over_its_pixels():
    grid, image, layers = 7, 84, 4
    side = 35
    centres = receptive_field_centres(side, layers)
    for j in range(side):
        conv = torch.zeros(1, 4, side, side)
        conv[0, :, j, j] = 10.0
        fg = grid_foreground(conv, grid, image, layers)
        cell = int(centres[j]) * grid // image  # 12-px cells
        assert bool(fg[0, cell, cell])
        # the mask cell really covers the receptive-field centre pixel (as apply_patch_mask fills it)
        pixels = upsample_mask(fg.float().round().bool() & (torch.arange(grid)[:, None] == cell)
                               & (torch.arange(grid)[None, :] == cell), image, image)
        assert bool(pixels[0, centres[j], centres[j]])


def test_adaptive_pooling_would_misalign_by_pixels():
    """The old average pool of 35 cells into 7 bins puts conv cell 4 (receptive-field centre pixel 15,
    inside the 12..23 px mask cell) into the first mask cell (0..11 px)."""
    pool = grid_pooling_matrix(84, 35, 4, 7)
    assert torch.allclose(pool.sum(1), torch.ones(7))
    assert pool[1, 4] > 0 and pool[0, 4] == 0
    adaptive = torch.nn.functional.adaptive_avg_pool1d(torch.eye(35)[None], 7)[0]  # (35, 7)
    assert adaptive[4, 0] > 0 and adaptive[4, 1] == 0
