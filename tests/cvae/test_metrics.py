import math

import pytest
import torch

from cvae.core.metrics import copy_first_frame_psnr, psnr, psnr_per_frame


def test_psnr_matches_formula():
    a = torch.zeros(3, 4, 4)
    b = torch.full((3, 4, 4), 0.1)
    assert psnr(a, b) == pytest.approx(20 * math.log10(1.0) - 10 * math.log10(0.01))
    assert psnr(a, b, data_range=2.0) == pytest.approx(20 * math.log10(2.0) - 10 * math.log10(0.01))


def test_psnr_identical_is_inf_and_uint8_is_scaled():
    a = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    assert psnr(a, a) == math.inf
    assert psnr(a, a.clone() ^ 1) == pytest.approx(psnr(a.float() / 255, (a ^ 1).float() / 255))


def test_per_frame_equals_frame_by_frame():
    torch.manual_seed(0)
    pred, target = torch.rand(5, 3, 8, 16), torch.rand(5, 3, 8, 16)
    per_frame = psnr_per_frame(pred, target)
    assert per_frame.shape == (5,)
    for t in range(5):
        assert per_frame[t].item() == pytest.approx(psnr(pred[t], target[t]), rel=1e-5)


def test_per_frame_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr_per_frame(torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4))


def test_copy_first_frame_baseline():
    frames = torch.zeros(4, 3, 2, 2)
    frames[1] += 0.1
    frames[2] += 0.2
    frames[3] += 0.5
    got = copy_first_frame_psnr(frames)
    assert got == pytest.approx([20.0, -10 * math.log10(0.04), -10 * math.log10(0.25)], rel=1e-5)
