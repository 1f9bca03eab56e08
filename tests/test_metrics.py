"""Evaluation metrics (csrip_lib.evaluation.metrics): PSNR/SSIM conventions against scikit-image, result tables,
and the Fig. 5 error-map analysis."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from csrip_lib.core.degradation import degrade, upsample_bicubic
from csrip_lib.evaluation.error_analysis import (concentration_curve, error_maps, error_statistics, local_contrast,
                                                 loss_gradients, mass_fraction)
from csrip_lib.evaluation.evaluate import summarize_results
from csrip_lib.evaluation.metrics import psnr, psnr_ssim, rgb_to_y, ssim_eval
from csrip_lib.losses import _gaussian_filter, gaussian_window


@pytest.fixture(scope="module")
def sr_hr(hr_faces) -> tuple[torch.Tensor, torch.Tensor]:
    """(bicubic x8 of the degraded face, HR face) float32 pairs, as `csrip evaluate` scores them."""
    hr = hr_faces[:4].float()
    return upsample_bicubic(degrade(hr, 8), 8), hr


def as_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """What a saved PNG holds: N x H x W x C uint8."""
    return (x.double() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def sk_scores(sr: torch.Tensor, hr: torch.Tensor, y_channel: bool = False, border: int = 0):
    """Reference per-image PSNR and SSIM with scikit-image on the 8-bit images."""
    a, b = as_uint8_hwc(sr), as_uint8_hwc(hr)
    p, s = [], []
    for u, v in zip(a, b):
        if y_channel:
            u, v = rgb2ycbcr(u)[..., 0] / 255, rgb2ycbcr(v)[..., 0] / 255
        else:
            u, v = u / 255, v / 255
        if border:
            u, v = u[border:-border, border:-border], v[border:-border, border:-border]
        p.append(peak_signal_noise_ratio(v, u, data_range=1))
        s.append(structural_similarity(v, u, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=1, channel_axis=None if y_channel else -1))
    return np.array(p), np.array(s)


@pytest.mark.parametrize("y_channel, border", [(False, 0), (True, 0), (False, 8), (True, 8)])
def test_match_skimage(sr_hr, y_channel, border):
    sr, hr = sr_hr
    ref_p, ref_s = sk_scores(sr, hr, y_channel, border)
    p, s = psnr(sr, hr, y_channel=y_channel, border=border), ssim_eval(sr, hr, y_channel=y_channel, border=border)
    assert p.shape == s.shape == (len(sr),) and p.dtype == s.dtype == torch.float64
    np.testing.assert_allclose(p.numpy(), ref_p, rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.numpy(), ref_s, rtol=0, atol=1e-6)
    assert 15 < p.min() and p.max() < 40 and 0.3 < s.min() and s.max() < 0.99  # realistic x8 scores
    both = psnr_ssim(sr, hr, y_channel=y_channel, border=border)  # the evaluation loop's call
    assert torch.equal(both[0], p) and torch.equal(both[1], s)


def test_float64_ssim_filter_equals_depthwise_convolution():
    """The float64 Gaussian passes (banded matrix products, fast on a CPU) compute the sums of the
    depthwise convolutions they replace, on odd, non-square sizes too."""
    torch.manual_seed(0)
    m = torch.rand(3, 4, 37, 52, dtype=torch.float64)
    g = gaussian_window(dtype=torch.float64)
    conv = F.conv2d(m, g.view(1, 1, 1, -1).expand(4, 1, 1, 11), groups=4)
    conv = F.conv2d(conv, g.view(1, 1, -1, 1).expand(4, 1, 11, 1), groups=4)
    fast = _gaussian_filter(m)
    assert fast.shape == conv.shape == (3, 4, 27, 42)
    torch.testing.assert_close(fast, conv, rtol=0, atol=1e-14)


def test_conventions_change_the_numbers(sr_hr):
    """Each switch of the convention matters, so the docstring's choice is not cosmetic."""
    sr, hr = sr_hr
    rgb, y = psnr(sr, hr), psnr(sr, hr, y_channel=True)
    assert (y - rgb).abs().min() > 0.05
    assert (ssim_eval(sr, hr, border=8) - ssim_eval(sr, hr)).abs().min() > 1e-4


def test_quantization_makes_scores_png_stable(sr_hr):
    sr, hr = sr_hr
    png = torch.from_numpy(as_uint8_hwc(sr)).permute(0, 3, 1, 2)  # uint8, as read back from disk
    hr8 = torch.from_numpy(as_uint8_hwc(hr)).permute(0, 3, 1, 2)
    torch.testing.assert_close(psnr(sr, hr), psnr(png, hr8), atol=1e-9, rtol=0)
    torch.testing.assert_close(ssim_eval(sr, hr), ssim_eval(png, hr8), atol=1e-9, rtol=0)
    exact = psnr(sr, hr, quantize=False)
    assert not torch.equal(exact, psnr(sr, hr)) and (exact - psnr(sr, hr)).abs().max() < 0.1


def test_data_range_255(sr_hr):
    sr, hr = sr_hr  # float32 rescaling can move a pixel across a rounding boundary: tiny tolerance
    torch.testing.assert_close(psnr(sr * 255, hr * 255, data_range=255), psnr(sr, hr), atol=1e-4, rtol=0)
    torch.testing.assert_close(ssim_eval(sr * 255, hr * 255, data_range=255), ssim_eval(sr, hr), atol=1e-5, rtol=0)


def test_identical_and_known_psnr():
    x = torch.rand(2, 3, 32, 32)
    assert torch.isinf(psnr(x, x)).all()
    torch.testing.assert_close(ssim_eval(x, x), torch.ones(2, dtype=torch.float64))
    y = torch.zeros(1, 1, 16, 16)
    z = torch.full((1, 1, 16, 16), 0.1)  # MSE = 0.01 -> 20 dB (0.1 is quantized to 26/255 first)
    assert float(psnr(z, y, quantize=False)) == pytest.approx(20.0)
    assert float(psnr(z, y)) == pytest.approx(20 * np.log10(255 / 26))


def test_y_channel_is_bt601():
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    assert float(rgb_to_y(white)) == pytest.approx(235 / 255)
    assert float(rgb_to_y(black)) == pytest.approx(16 / 255)


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(x=torch.rand(1, 3, 16, 16), y=torch.rand(1, 3, 16, 20)), ValueError, "same shape"),
    (dict(x=torch.rand(1, 3, 16, 16) * 255, y=torch.rand(1, 3, 16, 16) * 255), ValueError, "data_range"),
    (dict(x=torch.rand(3, 16, 16), y=torch.rand(3, 16, 16)), ValueError, "unsqueeze"),
    (dict(x=torch.rand(1, 1, 16, 16), y=torch.rand(1, 1, 16, 16), y_channel=True), ValueError, "RGB"),
    (dict(x=torch.rand(1, 3, 16, 16), y=torch.rand(1, 3, 16, 16), border=8), ValueError, "border"),
    (dict(x=torch.ones(1, 3, 16, 16, dtype=torch.int32), y=torch.ones(1, 3, 16, 16, dtype=torch.int32)),
     TypeError, "uint8"),
])
def test_bad_input(kwargs, err, msg):
    for fn in (psnr, ssim_eval):
        with pytest.raises(err, match=msg):
            fn(**kwargs)


def test_per_image_scores_summarize_per_model(sr_hr):
    """The scores of this module, summarized as `csrip evaluate` does (`evaluate.summarize_results`)."""
    sr, hr = sr_hr
    df = pd.DataFrame([{"model": model, "image": i, "psnr": float(p), "ssim": float(s)}
                       for model, out in (("bicubic", sr), ("identity", hr))
                       for i, (p, s) in enumerate(zip(psnr(out, hr), ssim_eval(out, hr)))])
    table = summarize_results(df)
    assert list(table.index) == ["bicubic", "identity"]  # order of first appearance
    bic = df[df.model == "bicubic"]
    assert table.loc["bicubic", "psnr_mean"] == pytest.approx(bic.psnr.mean())
    assert table.loc["bicubic", "ssim_median"] == pytest.approx(bic.ssim.median())
    assert table.loc["bicubic", "ssim_std"] == pytest.approx(bic.ssim.std())
    assert table.loc["bicubic", "images"] == len(sr)
    assert table.loc["identity", "ssim_mean"] == pytest.approx(1.0)
    assert np.isinf(table.loc["identity", "psnr_median"])  # identical images: +inf, kept


def test_mass_fraction():
    uniform = torch.ones(1, 100)
    spike = torch.zeros(1, 100)
    spike[0, 7] = 5.0
    two = torch.tensor([[3.0, 1.0] + [0.0] * 98])
    torch.testing.assert_close(mass_fraction(uniform), torch.tensor([0.9], dtype=torch.float64))
    torch.testing.assert_close(mass_fraction(spike), torch.tensor([0.01], dtype=torch.float64))
    torch.testing.assert_close(mass_fraction(two, 0.75), torch.tensor([0.01], dtype=torch.float64))
    torch.testing.assert_close(mass_fraction(two, 0.8), torch.tensor([0.02], dtype=torch.float64))


def test_fig5_claim_ssim_error_is_denser_than_squared_error(sr_hr):
    """Paper Sec. 3.3 / Fig. 5: 1 - SSIM spreads the error over the face, squared error is sparse."""
    sr, hr = sr_hr
    se, dssim = error_maps(sr, hr)
    assert se.shape == dssim.shape == (len(sr), 182, 182)
    assert (se >= 0).all() and (dssim > 0).all()
    torch.testing.assert_close(se.mean((1, 2)), ((sr - hr) ** 2).mean(1)[:, 5:-5, 5:-5].mean((1, 2)))
    assert (mass_fraction(dssim) > mass_fraction(se) + 0.1).all()


def test_loss_gradients(sr_hr):
    sr, hr = sr_hr
    g = loss_gradients(sr[:2], hr[:2])
    assert set(g) == {"mse", "ssim"} and g["mse"].shape == g["ssim"].shape == (2, 192, 192)
    expected = (2 * (sr[:2] - hr[:2]) / sr[:2].numel()).abs().sum(1)  # d/dp mean((p - t)^2)
    torch.testing.assert_close(g["mse"], expected)
    assert torch.isfinite(g["ssim"]).all() and g["ssim"].sum() > 0


def test_concentration_curve():
    uniform = torch.ones(2, 50)
    f, c = concentration_curve(uniform, points=11)
    torch.testing.assert_close(c, f)  # uniform error: the diagonal
    spike = torch.zeros(1, 50)
    spike[0, 3] = 1.0
    f, c = concentration_curve(spike, points=11)
    assert c[0] == 0 and (c[1:] == 1).all()


def test_local_contrast_separates_flat_from_edges():
    x = torch.zeros(1, 3, 40, 40)
    x[..., 20:] = 1.0  # a vertical edge at column 20
    c = local_contrast(x)
    assert c.shape == (1, 30, 30)
    assert c[0, :, 0].max() == 0 and c[0, :, 14:16].min() > 0.3  # flat far left, high at the edge


def test_error_statistics_show_the_fig5_effect(sr_hr):
    sr, hr = sr_hr
    stats = error_statistics(sr, hr)
    assert len(stats) == 4 * len(sr)
    m = stats.groupby("signal").mean(numeric_only=True)
    # 1 - SSIM is denser than squared error and puts more of the error on low-contrast skin
    assert m.loc["1 - SSIM", "pixels_for_90pct"] > m.loc["squared error", "pixels_for_90pct"] + 0.1
    assert m.loc["1 - SSIM", "low_contrast_share"] > 1.5 * m.loc["squared error", "low_contrast_share"]
    assert m.loc["|grad| SSIM loss", "low_contrast_share"] > m.loc["|grad| MSE loss", "low_contrast_share"]
    assert "pixels_for_50pct" in error_statistics(sr[:1], hr[:1], mass=0.5)


def test_fig05_writes_the_figure(hr_faces, tmp_path, monkeypatch):
    from csrip_lib.tutorial.figures import fig05_error_maps

    monkeypatch.setenv("CSRIP_FIGURES", str(tmp_path))
    fig = fig05_error_maps(hr_faces[:2], sizes=(24, 96), save=True)
    assert (tmp_path / "fig05_error_maps.png").stat().st_size > 10_000
    assert len(fig.axes) == 2 * 4 + 2 * 2  # 4 panels per row + 2 colorbars per row
    with pytest.raises(ValueError, match="sizes"):
        fig05_error_maps(hr_faces[:1], sizes=(30,))
    import matplotlib.pyplot as plt
    plt.close("all")
