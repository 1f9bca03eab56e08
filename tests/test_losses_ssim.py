"""SSIM loss of paper Sec. 3.3 (Eq. 2-3): csrip_lib.losses.ssim_map / ssim / SSIMLoss.

Reference: skimage.metrics.structural_similarity with the SSIM reference settings (Gaussian
window sigma 1.5, population covariance, data range 1), on real faces (hr_faces fixture: LFW when
CSRIP_DATA is set) and on random images.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from csrip_lib.core.degradation import degrade, upsample_bicubic
from csrip_lib.losses import SSIMLoss, gaussian_window, ssim, ssim_map


def sk_ssim(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per-image skimage SSIM of N x C x H x W tensors (the reference implementation)."""
    rgb = x.shape[1] == 3
    to_np = (lambda t: t.permute(1, 2, 0).double().numpy()) if rgb else (lambda t: t[0].double().numpy())
    return np.array([structural_similarity(to_np(a), to_np(b), gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=1,
                                           channel_axis=-1 if rgb else None) for a, b in zip(x, y)])


def degraded(hr: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """What an SR model competes with: the bicubic upsampling of the degraded face."""
    return upsample_bicubic(degrade(hr, factor), factor)


@pytest.fixture(scope="module")
def pairs(hr_faces) -> tuple[torch.Tensor, torch.Tensor]:
    """Realistic (prediction, target) pairs spanning SSIM ~0.5..0.95: bicubic x8, x4, x2 of faces."""
    hr = hr_faces[:3].float()
    pred = torch.cat([degraded(hr, f) for f in (8, 4, 2)])
    return pred, hr.repeat(3, 1, 1, 1)


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_matches_skimage_on_faces(pairs, dtype, tol):
    pred, hr = pairs
    ours = ssim(pred.to(dtype), hr.to(dtype), reduction="none").double().numpy()
    ref = sk_ssim(pred, hr)
    assert ref.max() - ref.min() > 0.1 and ref.min() < 0.85  # the pairs span a useful range of quality
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 3, 37, 53), (3, 1, 11, 11), (2, 1, 64, 20)])
def test_matches_skimage_on_random_images(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.rand(shape, generator=g)
    y = (x + 0.3 * torch.randn(shape, generator=g)).clamp(0, 1)
    np.testing.assert_allclose(ssim(x, y, reduction="none").double().numpy(), sk_ssim(x, y), rtol=0, atol=1e-4)


def test_map_shape_and_mean(pairs):
    pred, hr = pairs
    m = ssim_map(pred, hr)
    assert m.shape == (pred.shape[0], 3, 182, 182)  # 'valid' windows: 192 - 10
    assert m.dtype == torch.float32
    assert torch.allclose(ssim(pred, hr), m.mean())
    assert torch.allclose(ssim(pred, hr, reduction="none"), m.mean((1, 2, 3)))


def test_window_is_the_reference_gaussian():
    w = gaussian_window(dtype=torch.float64)
    r = torch.arange(11, dtype=torch.float64) - 5
    ref = torch.exp(-r ** 2 / (2 * 1.5 ** 2))
    torch.testing.assert_close(w, ref / ref.sum())


def test_identical_images_give_one_and_zero_loss(hr_faces):
    x = hr_faces[:2].float()
    torch.testing.assert_close(ssim(x, x, reduction="none"), torch.ones(2), atol=1e-6, rtol=0)
    assert float(SSIMLoss()(x, x)) == pytest.approx(0.0, abs=1e-6)
    flat = torch.full((1, 3, 16, 16), 0.5)  # zero variance: the constants keep it defined
    assert float(ssim(flat, flat)) == pytest.approx(1.0)


def test_loss_is_eq2(pairs):
    pred, hr = pairs
    loss = SSIMLoss()(pred, hr)
    torch.testing.assert_close(loss, 0.5 * (1 - ssim(pred, hr)))
    assert 0 < float(loss) < 0.5


def test_worse_images_score_lower(hr_faces):
    hr = hr_faces[:2].float()
    scores = [float(ssim(degraded(hr, f), hr)) for f in (2, 4, 8)]
    assert scores[0] > scores[1] > scores[2]
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(hr.shape, generator=g)
    noisy = [float(ssim((hr + s * noise).clamp(0, 1), hr)) for s in (0.01, 0.05, 0.2)]
    assert noisy[0] > noisy[1] > noisy[2]


def test_symmetric(pairs):
    pred, hr = pairs
    torch.testing.assert_close(ssim_map(pred, hr), ssim_map(hr, pred), atol=1e-6, rtol=0)


def test_scale_invariant_with_data_range(pairs):
    pred, hr = pairs
    torch.testing.assert_close(ssim(pred * 255, hr * 255, data_range=255), ssim(pred, hr), atol=1e-6, rtol=0)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    x = (0.2 + 0.6 * torch.rand(1, 3, 12, 13, generator=g, dtype=torch.float64)).requires_grad_()
    y = (0.2 + 0.6 * torch.rand(1, 3, 12, 13, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: ssim_map(a, b, check_range=False), (x, y))
    assert torch.autograd.gradcheck(lambda a: SSIMLoss(check_range=False)(a, y.detach()), (x,))


def test_gradient_descent_on_the_loss_improves_ssim(pairs):
    pred, hr = pairs
    x = pred[:2].clone().requires_grad_()
    before = float(ssim(x.detach(), hr[:2]))
    opt = torch.optim.SGD([x], lr=200.0)
    for _ in range(5):
        opt.zero_grad()
        SSIMLoss(check_range=False)(x, hr[:2]).backward()
        opt.step()
    assert float(ssim(x.detach().clamp(0, 1), hr[:2])) > before + 0.01


def test_bf16_autocast_computes_in_float32(pairs):
    pred, hr = pairs
    pred, hr = pred[:3].float(), hr[:3].float()
    conv = torch.nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
    x = pred.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(x)  # a bf16 activation, as an SR network under autocast produces
        assert out.dtype == torch.bfloat16
        s = ssim(out, hr, reduction="none", check_range=False)
        loss = SSIMLoss(check_range=False)(out, hr)
    assert s.dtype == torch.float32 and torch.isfinite(s).all()
    # exactly the fp32 statistics of the bf16-rounded input, and close to the fp32 result
    torch.testing.assert_close(s, ssim(out.detach().float(), hr, reduction="none", check_range=False),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(s, ssim(pred, hr, reduction="none"), atol=5e-3, rtol=0)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_memory_layouts_and_views(pairs):
    pred, hr = pairs
    ref = ssim(pred, hr, reduction="none")
    cl = pred.contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ssim(cl, hr, reduction="none"), ref)
    big = torch.zeros(pred.shape[0], 3, 200, 200, dtype=pred.dtype)
    big[..., 4:196, 4:196] = pred
    torch.testing.assert_close(ssim(big[..., 4:196, 4:196], hr, reduction="none"), ref)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(pairs):
    pred, hr = pairs
    torch.testing.assert_close(ssim(pred.cuda(), hr.cuda(), reduction="none").cpu(),
                               ssim(pred, hr, reduction="none"), atol=1e-5, rtol=0)


def test_gradients_flow_to_both_arguments():
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    y = torch.rand(1, 1, 16, 16, requires_grad=True)
    ssim(x, y).backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- bad input

X = torch.rand(2, 3, 16, 16)


@pytest.mark.parametrize("x, y, err, msg", [
    (X, torch.rand(2, 3, 16, 17), ValueError, "same shape"),
    (X, torch.rand(1, 3, 16, 16), ValueError, "same shape"),
    (torch.rand(2, 4, 16, 16), torch.rand(2, 4, 16, 16), ValueError, "C = 1 or 3"),
    (torch.rand(3, 16, 16), torch.rand(3, 16, 16), ValueError, "N x C x H x W"),
    (torch.rand(2, 3, 10, 16), torch.rand(2, 3, 10, 16), ValueError, "at least 11 x 11"),
    ((X * 255).to(torch.uint8), (X * 255).to(torch.uint8), TypeError, "float tensor"),
    (X.numpy(), X, TypeError, "torch.Tensor"),
    (X * 255, X * 255, ValueError, r"values in \[0, 1\]"),
    (X * 2 - 1, X, ValueError, r"values in \[0, 1\]"),
    (X, torch.full_like(X, float("nan")), ValueError, "y must hold"),
])
def test_bad_input_is_rejected_clearly(x, y, err, msg):
    with pytest.raises(err, match=msg):
        ssim(x, y)
    with pytest.raises(err, match=msg):
        SSIMLoss()(x, y)


def test_range_check_tolerance_and_switch():
    x = torch.rand(1, 3, 16, 16)
    ssim(x * 1.0005, x)  # tiny interpolation overshoot is accepted
    assert torch.isfinite(ssim(x * 3, x, check_range=False))  # hot paths may skip the check


def test_bad_reduction():
    with pytest.raises(ValueError, match="reduction"):
        ssim(X, X, reduction="sum")
