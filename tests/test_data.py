"""IDX reader, Fashion-MNIST / image-folder / numpy loaders, batched augmentations, step sampler."""

import gzip

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from representations.data import (
    AugmentConfig,
    BatchAugment,
    CropParams,
    DataError,
    StepSampler,
    load_fashion_mnist,
    load_image_folder,
    load_numpy,
    parse_idx,
    read_idx,
    view_to_view_grid,
    write_idx,
)

FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32])
def test_idx_round_trip(tmp_path, name, dtype):
    array = (np.arange(2 * 3 * 4) * 7 % 251).astype(dtype).reshape(2, 3, 4)
    path = write_idx(array, tmp_path / name)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_idx_corrupt_header_and_truncation(tmp_path):
    with pytest.raises(DataError, match="corrupt IDX header"):
        parse_idx(b"\x12\x34\x08\x03" + bytes(20))
    good = bytes([0, 0, 8, 2]) + np.array([2, 3], dtype=">i4").tobytes() + bytes(6)
    assert parse_idx(good).shape == (2, 3)
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(good[:-1])
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\xff\xff\xff\xff"))
    with pytest.raises(DataError, match="corrupt IDX header"):
        read_idx(path)
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "missing.gz")


@pytest.mark.skipif(not __import__("os").path.isdir(FASHION), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_test_split():
    data = load_fashion_mnist(FASHION, "test")
    assert data.images.shape == (10000, 1, 28, 28) and data.images.dtype == torch.uint8
    assert sorted(data.labels.unique().tolist()) == list(range(10))
    assert data.classes[9] == "ankle boot"
    small = data.limit(100, seed=3)
    assert len(small) == 100 and torch.equal(small.images, data.limit(100, seed=3).images)


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)  # folder exists, files do not


def test_image_folder(tmp_path):
    from PIL import Image

    for cls, value in (("cat", 40), ("dog", 200)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), value + i, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    data = load_image_folder(tmp_path, image_size=8)
    assert data.images.shape == (6, 3, 8, 8) and data.classes == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert int(data.images[3, 0, 0, 0]) == 200
    grey = load_image_folder(tmp_path, image_size=8, channels=1)
    assert grey.images.shape == (6, 1, 8, 8)
    (tmp_path / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        load_image_folder(tmp_path, image_size=8)
    with pytest.raises(DataError, match="not found"):
        load_image_folder(tmp_path / "nope")


def test_numpy_layouts(tmp_path):
    hwc = np.random.default_rng(0).random((5, 6, 6, 3)).astype(np.float32)
    np.savez(tmp_path / "a.npz", images=hwc, labels=np.arange(5))
    data = load_numpy(tmp_path / "a.npz")
    assert data.images.shape == (5, 3, 6, 6) and data.images.dtype == torch.uint8
    assert int(data.images.max()) <= 255 and data.labels.tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "b.npy", np.zeros((4, 9, 10, 10), dtype=np.uint8))
    frames = load_numpy(tmp_path / "b.npy")
    assert frames.images.shape == (4, 9, 10, 10) and (frames.labels == -1).all()
    np.savez(tmp_path / "c.npz", images=np.zeros((3, 4, 4), np.uint8), labels=np.arange(2))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        load_numpy(tmp_path / "c.npz")


def _images(n=16, c=1, size=20):
    return torch.randint(0, 256, (n, c, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_augment_is_seeded_and_in_range():
    aug = BatchAugment(AugmentConfig(size=16, blur_p=0.5))
    x = _images()
    a, crop = aug(x, torch.Generator().manual_seed(0))
    b, _ = aug(x, torch.Generator().manual_seed(0))
    c, _ = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == (16, 1, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    assert isinstance(crop, CropParams) and crop.cx.shape == (16,)


def test_augment_colour_groups_and_grey():
    aug = BatchAugment(AugmentConfig(size=12, grey_p=1.0))
    out, _ = aug(_images(c=9, size=12), torch.Generator().manual_seed(0))
    assert out.shape == (16, 9, 12, 12)
    for g in range(3):  # every RGB frame of the stack is grey
        assert torch.allclose(out[:, 3 * g], out[:, 3 * g + 1]) and torch.allclose(out[:, 3 * g], out[:, 3 * g + 2])


def test_augment_rows_match_the_global_batch():
    """Two ranks with strided rows get exactly the views a single process gives those samples."""
    aug = BatchAugment(AugmentConfig(size=16, blur_p=0.5))
    x = _images()
    full, _ = aug(x, torch.Generator().manual_seed(5))
    for rank in range(2):
        rows = torch.arange(8) * 2 + rank
        part, _ = aug(x[rows], torch.Generator().manual_seed(5), rows, 16)
        assert torch.equal(part, full[rows])


def test_identity_crop_and_view_warp():
    aug = BatchAugment(AugmentConfig(size=20, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0,
                                     blur_p=0.0))
    x = _images(n=4)
    out, crop = aug(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.float() / 255, atol=1e-5)
    saliency = torch.rand(4, 1, 5, 5)
    grid = view_to_view_grid(crop, crop, (5, 5))
    assert torch.allclose(F.grid_sample(saliency, grid, align_corners=False), saliency, atol=1e-5)
    flipped = CropParams(crop.cx, crop.cy, -crop.sx, crop.sy)
    warped = F.grid_sample(saliency, view_to_view_grid(crop, flipped, (5, 5)), align_corners=False)
    assert torch.allclose(warped, saliency.flip(-1), atol=1e-5)


def test_step_sampler_shards_and_resumes():
    one = StepSampler(100, 8, seed=3)
    assert one.steps_per_epoch == 12
    ranks = [StepSampler(100, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    for step in (0, 5, 13):
        union = torch.cat([s.indices(step) for s in ranks])
        assert sorted(union.tolist()) == sorted(one.indices(step).tolist())
        assert torch.equal(StepSampler(100, 8, seed=3).indices(step), one.indices(step))
    assert not torch.equal(one.indices(0), one.indices(12))  # a new epoch reshuffles
    with pytest.raises(ValueError, match="fewer than one global batch"):
        StepSampler(10, 8, world_size=2)
