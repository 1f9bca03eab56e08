"""Degradation model and residual images (paper Sec. 3.3, Fig. 3/4): csrip_lib.core.degradation.

Natural-image tests use the shared `hr_faces` fixture (real LFW faces when CSRIP_DATA is set,
synthetic faces otherwise). Each geometric check has a negative control showing it can fail.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from skimage.filters import gaussian as sk_gaussian

from csrip_lib.core.config import RESIDUAL_SIGMAS
from csrip_lib.core.degradation import degrade, downsample2x, gaussian_blur, make_pyramid, residual, upsample_bicubic
from csrip_lib.evaluation.analysis import (bicubic_scores, centre_of_mass, downsample2x_naive, energy_above,
                                           module_detail, radial_power_spectrum, residual_transfer, residual_vs_detail)
from csrip_lib.evaluation.metrics import psnr, ssim_eval

SIZES = {"lr": 24, "x2": 48, "x4": 96, "hr": 192}
PAPER_SIGMAS = [(48, 1 / 3), (96, 1.0), (192, 7 / 3)]


def grid(h: int = 192) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(h, dtype=torch.float64),
                          indexing="ij")


def as_batch(img: torch.Tensor, n: int = 1) -> torch.Tensor:
    return img.expand(n, 3, *img.shape[-2:]).clone()


def naive_pyramid_lr(hr: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    x = hr
    for _ in range(3):
        x = downsample2x_naive(x, sigma)
    return x


# ----------------------------------------------------------------------------- shapes, dtypes

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pyramid_sizes_batched(dtype):
    hr = torch.rand(5, 3, 192, 192, dtype=dtype)
    p = make_pyramid(hr)
    assert set(p) == set(SIZES)
    for key, size in SIZES.items():
        assert p[key].shape == (5, 3, size, size) and p[key].dtype == dtype
    assert p["hr"] is hr
    # batching does not mix images: image 3 alone gives the same pyramid
    alone = make_pyramid(hr[3:4])
    for key in SIZES:
        torch.testing.assert_close(p[key][3:4], alone[key])
    # degrade() is the same chain of 2x steps
    torch.testing.assert_close(degrade(hr, 8), p["lr"])
    torch.testing.assert_close(degrade(p["x4"], 2), p["x2"])


def test_pyramid_on_meta_device_keeps_shapes():
    p = make_pyramid(torch.empty(2, 3, 192, 192, device="meta"))
    assert {k: tuple(v.shape[-2:]) for k, v in p.items()} == {k: (s, s) for k, s in SIZES.items()}
    assert all(v.device.type == "meta" for v in p.values())


def test_float32_matches_float64(hr_faces):
    p64 = make_pyramid(hr_faces)
    p32 = make_pyramid(hr_faces.float())
    for key in SIZES:
        assert (p32[key].double() - p64[key]).abs().max() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(hr_faces):
    hr = hr_faces.float()
    gpu = make_pyramid(hr.cuda())
    cpu = make_pyramid(hr)
    for key in SIZES:
        assert gpu[key].device.type == "cuda"
        assert (gpu[key].cpu() - cpu[key]).abs().max() < 1e-5
    for size, sigma in PAPER_SIGMAS:
        key = next(k for k, s in SIZES.items() if s == size)
        assert (residual(gpu[key]).cpu() - residual(cpu[key])).abs().max() < 1e-5
    assert (upsample_bicubic(gpu["lr"]).cpu() - upsample_bicubic(cpu["lr"])).abs().max() < 1e-5


# ----------------------------------------------------------------------------- the blur

@pytest.mark.parametrize("sigma", [1 / 3, 0.5, 1.0, 1.5, 7 / 3])
def test_blur_matches_skimage(hr_faces, sigma):
    """torchvision reflect padding = scipy/skimage mode='mirror'; radius int(4 sigma + 0.5) = truncate=4."""
    faces = hr_faces[:3]
    ours = gaussian_blur(faces, sigma).permute(0, 2, 3, 1).numpy()
    for img, out in zip(faces.permute(0, 2, 3, 1).numpy(), ours):
        ref = sk_gaussian(img, sigma=sigma, mode="mirror", truncate=4.0, channel_axis=-1,
                          preserve_range=True)
        assert np.abs(out - ref).max() < 1e-10
        # negative control: a different boundary rule is visibly different near the border
        other = sk_gaussian(img, sigma=sigma, mode="constant", truncate=4.0, channel_axis=-1)
        assert np.abs(out - other).max() > 1e-3


def test_blur_float32_matches_skimage(hr_faces):
    img = hr_faces[0].permute(1, 2, 0).numpy()
    for sigma in (1 / 3, 1.0, 7 / 3):
        out = gaussian_blur(hr_faces[:1].float(), sigma)[0].permute(1, 2, 0).double().numpy()
        ref = sk_gaussian(img, sigma=sigma, mode="mirror", truncate=4.0, channel_axis=-1)
        assert np.abs(out - ref).max() < 1e-5


def test_blur_is_the_same_in_either_layout_and_keeps_it():
    """The blur runs in channels_last inside; what comes out has the layout that went in, same numbers."""
    x = torch.rand(2, 3, 40, 40)
    nhwc = x.contiguous(memory_format=torch.channels_last)
    for sigma in (1 / 3, 1.0, 7 / 3):
        a, b = gaussian_blur(x, sigma), gaussian_blur(nhwc, sigma)
        assert a.is_contiguous() and b.is_contiguous(memory_format=torch.channels_last) and not b.is_contiguous()
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_blur_is_float32_inside_bf16_autocast():
    """A residual taken inside a bf16 training step (lp's features of an SR output) is computed as outside
    it: the fixed filter never runs in bf16 (oneDNN's bf16 depthwise convolution is a slow path)."""
    x = torch.rand(2, 3, 48, 48).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = residual(x, 1.0)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, residual(x, 1.0), rtol=0, atol=0)
    assert gaussian_blur(x.bfloat16(), 1.0).dtype == torch.bfloat16  # the caller's dtype comes back


def test_blur_sigma_zero_is_identity():
    x = torch.rand(2, 3, 48, 48)
    assert gaussian_blur(x, 0) is x


# ----------------------------------------------------------------------------- geometry

def test_bicubic_of_degraded_bump_is_not_shifted():
    """A smooth bump keeps its centre through 192 -> 24 -> 192; naive [::2] moves it 3.5 px."""
    yy, xx = grid()
    cy, cx = 80.3, 101.7
    hr = as_batch(0.2 + 0.6 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 14.0**2)))
    for sigma in (0.5, 1.0, 1.5):
        sr = upsample_bicubic(make_pyramid(hr, sigma)["lr"], 8)
        centre = centre_of_mass(sr - 0.2)[0]
        assert torch.allclose(centre, torch.tensor([cy, cx], dtype=torch.float64), atol=0.02)
        # the same check catches a decimation that keeps every second pixel: 0.5 + 1 + 2 px
        naive = centre_of_mass(upsample_bicubic(naive_pyramid_lr(hr, sigma), 8) - 0.2)[0]
        assert torch.allclose(naive - torch.tensor([cy, cx], dtype=torch.float64),
                              torch.full((2,), 3.5, dtype=torch.float64), atol=0.05)


@pytest.mark.parametrize("axis", [-1, -2])
def test_bicubic_of_degraded_ramp_has_zero_offset(axis):
    yy, xx = grid()
    slope = 0.8 / 192
    hr = as_batch(0.1 + slope * (xx if axis == -1 else yy))
    interior = (..., slice(48, 144), slice(48, 144))
    offset = ((hr - upsample_bicubic(make_pyramid(hr)["lr"], 8))[interior] / slope).mean()
    assert abs(offset) < 0.01
    naive = ((hr - upsample_bicubic(naive_pyramid_lr(hr), 8))[interior] / slope).mean()
    assert abs(naive - 3.5) < 0.01


def test_one_step_is_blur_then_2x2_mean():
    x = torch.rand(2, 3, 96, 96, dtype=torch.float64)
    b = gaussian_blur(x, 1.0)
    expected = (b[..., ::2, ::2] + b[..., 1::2, ::2] + b[..., ::2, 1::2] + b[..., 1::2, 1::2]) / 4
    torch.testing.assert_close(downsample2x(x, 1.0), expected)


def test_more_sigma_means_less_aliasing_and_more_blur():
    """Sigma trades aliasing for blur: a fine grating is removed, a coarse one is kept."""
    yy, xx = grid()
    fine = as_batch(0.5 + 0.4 * torch.cos(2 * np.pi * 0.45 * xx))  # above the 96 px Nyquist
    coarse = as_batch(0.5 + 0.4 * torch.cos(2 * np.pi * 0.05 * xx))
    alias = [downsample2x(fine, s).std().item() for s in (0.0, 0.5, 1.0, 2.0)]
    kept = [downsample2x(coarse, s).std().item() for s in (0.0, 0.5, 1.0, 2.0)]
    assert alias[0] > 0.03 and all(a > b for a, b in zip(alias, alias[1:])) and alias[-1] < 1e-3
    assert all(a > b for a, b in zip(kept, kept[1:])) and kept[-1] > 0.5 * kept[0]


# ----------------------------------------------------------------------------- residual images

def test_residual_default_sigma_by_size():
    for size, sigma in PAPER_SIGMAS:
        x = torch.rand(2, 3, size, size, dtype=torch.float64)
        assert RESIDUAL_SIGMAS[size] == pytest.approx(sigma)
        torch.testing.assert_close(residual(x), x - gaussian_blur(x, sigma))
        assert not torch.allclose(residual(x), residual(x, 2 * sigma))
    with pytest.raises(ValueError, match="no default residual sigma for 64px"):
        residual(torch.rand(1, 3, 64, 64))
    assert residual(torch.rand(1, 3, 64, 64), 1.0).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("size,sigma", PAPER_SIGMAS)
def test_residual_is_high_pass(size, sigma):
    const = torch.full((2, 3, size, size), 0.37, dtype=torch.float64)
    assert residual(const, sigma).abs().max() < 1e-12
    yy, xx = grid(size)
    ramp = as_batch(0.1 + 0.7 * (0.3 * xx + 0.7 * yy) / size)
    r = int(4 * sigma + 0.5)  # kernel radius: beyond it the mirrored border is not seen
    assert residual(ramp, sigma)[..., r:-r, r:-r].abs().max() < 1e-12


@pytest.mark.parametrize("size,sigma", PAPER_SIGMAS)
def test_residual_of_natural_image_is_zero_mean_and_high_frequency(hr_faces, size, sigma):
    x = torch.nn.functional.interpolate(hr_faces, size=(size, size), mode="area")
    r = residual(x, sigma)
    assert r.mean().abs() < 1e-3 * x.mean()
    # frequency where the (sampled) residual filter passes half its Nyquist amplitude
    f = np.linspace(0, 0.5, 501)
    half = f[np.argmax(residual_transfer(f, sigma) >= residual_transfer(0.5, sigma)[0] / 2)]
    res_frac, img_frac = energy_above(r, half), energy_above(x - x.mean(), half)
    assert res_frac > 0.3 and res_frac > 5 * img_frac
    # its spectrum is the image's times the filter response squared (checked along the axes)
    freqs, p_res = radial_power_spectrum(r, window=False)
    _, p_img = radial_power_spectrum(x - x.mean(), window=False)
    assert p_res[0] / p_img[0] < 1e-2 * p_res[-1] / p_img[-1]


def test_residual_transfer_matches_continuous_gaussian_for_large_sigma():
    f = np.linspace(0, 0.5, 11)
    for sigma in (1.0, 7 / 3):
        assert np.abs(residual_transfer(f, sigma) - (1 - np.exp(-2 * np.pi**2 * sigma**2 * f**2))
                      ).max() < 0.01
    # the paper's sigma = 1/3 samples to a 3-tap kernel: ~10x weaker than the continuous formula
    assert residual_transfer(0.5, 1 / 3)[0] < 0.05 < 1 - np.exp(-2 * np.pi**2 / 9 * 0.25)


def test_residual_transfer_predicts_measured_gain():
    """A pure horizontal grating passes the residual filter with exactly the predicted gain."""
    yy, xx = grid(96)
    for freq in (0.125, 0.25, 0.375):
        g = as_batch(torch.cos(2 * np.pi * freq * xx))
        for sigma in (1 / 3, 1.0):
            r = residual(g, sigma)[..., 12:-12, 12:-12]
            gain = r.abs().max() / g[..., 12:-12, 12:-12].abs().max()
            assert abs(gain - residual_transfer(freq, sigma)[0]) < 1e-3


# ----------------------------------------------------------------------------- bad input

def test_bad_input_errors_are_clear():
    with pytest.raises(TypeError, match="float"):
        make_pyramid(torch.zeros(1, 3, 192, 192, dtype=torch.uint8))
    with pytest.raises(ValueError, match="N x C x H x W"):
        make_pyramid(torch.rand(3, 192, 192))
    with pytest.raises(ValueError, match="192x192"):
        make_pyramid(torch.rand(1, 3, 250, 250))
    with pytest.raises(ValueError, match="N x C x H x W"):
        residual(torch.rand(1, 5, 48, 48))
    with pytest.raises(TypeError, match="torch.Tensor"):
        make_pyramid(np.zeros((1, 3, 192, 192)))
    with pytest.raises(ValueError, match="factor"):
        degrade(torch.rand(1, 3, 192, 192), 3)


# ----------------------------------------------------------------------------- analysis helpers

def test_bicubic_scores_fall_with_blur(hr_faces):
    hr = hr_faces[:4].float()
    df = bicubic_scores(hr, [0.5, 1.0, 2.0])
    assert list(df.sigma) == [0.5, 1.0, 2.0]
    assert df.psnr.is_monotonic_decreasing and df.ssim.is_monotonic_decreasing
    sr = upsample_bicubic(make_pyramid(hr, 1.0)["lr"], 8)
    assert df.psnr[1] == pytest.approx(psnr(sr, hr).mean().item())
    assert df.ssim[1] == pytest.approx(ssim_eval(sr, hr).mean().item())


def test_one_step_detail_is_best_matched_by_the_degradation_sigma(hr_faces):
    """One 2x step removes the same band in pixels at every scale (notebook 02's argument)."""
    p = make_pyramid(hr_faces.float(), 1.0)
    torch.testing.assert_close(module_detail(p, "x2"), module_detail(p, "x2", cumulative=True))
    df = residual_vs_detail(p, [0.5, 1.0, 2.0])
    assert len(df) == 9 and df.paper_sigma.sum() == 1  # only 96 px uses sigma 1
    assert (df.loc[df.groupby("size").corr_step.idxmax(), "sigma"] == 1.0).all()
    with pytest.raises(ValueError, match="level"):
        module_detail(p, "lr")


# ----------------------------------------------------------------------------- notebook sliders

def test_sliders_draw_on_construction_and_redraw_on_change(monkeypatch, hr_faces):
    import matplotlib
    matplotlib.use("Agg")
    from csrip_lib.tutorial import widgets

    shown, png_output = [], widgets.png_output

    def spy(fig):
        shown.append([t.get_text() for ax in fig.axes for t in (ax.title, ax.xaxis.label)])
        return png_output(fig)

    monkeypatch.setattr(widgets, "png_output", spy)
    hr = hr_faces[:1].float()
    box = widgets.sigma_explorer(hr, sigma=1.0)
    assert len(shown) == 1 and "LR 24 px (σ=1.00)" in shown[0]
    assert any(re.fullmatch(r"\d+\.\d\d dB / 0\.\d{3}", t) for t in shown[0])  # PSNR / SSIM label
    first = box.children[-1].outputs
    assert len(first) == 1 and first[0]["data"]["image/png"].startswith("iVBOR")  # base64 PNG
    box.children[0].value = 2.0
    assert len(shown) == 2 and "LR 24 px (σ=2.00)" in shown[1]
    assert len(box.children[-1].outputs) == 1 and box.children[-1].outputs != first

    shown.clear()
    box = widgets.residual_explorer(hr)
    assert [s.description for s in box.children[:3]] == [f"residual σ at {n} px" for n in (48, 96, 192)]
    assert len(shown) == 1 and any("σ=1.00" in t for t in shown[0])
    box.children[1].value = 1.5
    assert len(shown) == 2 and any("σ=1.50" in t for t in shown[1])

    # start values on the step grid (one arrow press = one step), aligned labels, redraw state cleared
    assert [s.value for s in box.children[:3]] == [0.35, 1.5, 2.35]
    assert {s.style.description_width for s in box.children[:3]} == {widgets.LABEL_WIDTH}
    assert all(s.continuous_update for s in box.children[:3]) and box.children[3].value == ""


def test_explorer_leaves_a_static_figure_and_lab_saves_widget_state(tmp_path, hr_faces):
    """A saved notebook keeps the figure as image/png next to the widget view, and `make venv`
    makes JupyterLab store widget state (else a reopened notebook says "model not found")."""
    import json

    import matplotlib
    matplotlib.use("Agg")
    from csrip_lib.tutorial import widgets

    box = widgets.sigma_explorer(hr_faces[:1].float(), sigma=1.0)
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"] == box.children[-1].outputs[0]["data"]["image/png"]
    box.children[0].value = 0.5  # the fallback follows the slider
    assert box._repr_mimebundle_()["image/png"] == box.children[-1].outputs[0]["data"]["image/png"]
    assert bundle["image/png"] != box._repr_mimebundle_()["image/png"]

    path = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}))
    assert widgets.install_lab_settings(tmp_path) == path
    settings = json.loads(path.read_text())
    assert settings["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": True}
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}  # kept
    assert widgets.on_grid(1 / 3, 0.1, 0.05) == 0.35 and widgets.on_grid(7 / 3, 0.1, 0.05) == 2.35


# ------------------------------------------------------------------------- DegradationConfig
def test_degradation_config_owns_the_parameters_and_round_trips_through_checkpoints():
    from dataclasses import replace

    from csrip_lib.core.config import DegradationConfig, Preset, degradation_of, from_dict, get_preset, to_dict

    d = DegradationConfig(sigma=0.5)
    p = replace(get_preset("quick"), degradation=d)
    assert from_dict(Preset, to_dict(p)).degradation == d
    assert degradation_of({"degradation": to_dict(d)}) == d
    assert degradation_of({}) == DegradationConfig() == degradation_of({"sigma": None})  # older checkpoints
    assert degradation_of({"sigma": 0.5}) == d  # an early run's loose number
    x = torch.rand(1, 3, 192, 192)
    assert torch.equal(make_pyramid(x, d)["lr"], make_pyramid(x, 0.5)["lr"])  # a number: DegradationConfig(sigma=it)
    assert not torch.equal(make_pyramid(x, d)["lr"], make_pyramid(x)["lr"])
    for bad in ({"sigma": -1}, {"truncate": 0}, {"decimation": "stride"}):
        with pytest.raises(ValueError):
            DegradationConfig(**bad)


def test_for_models_picks_the_training_degradation_warns_on_override_and_refuses_a_mix():
    from csrip_lib.core.config import DegradationConfig
    from csrip_lib.core.degradation import for_models
    from csrip_lib.core.console import CSRIPError

    class Model:
        def __init__(self, sigma):
            self.degradation = DegradationConfig(sigma=sigma)

    half, one = Model(0.5), Model(1.0)
    assert for_models({"bicubic": upsample_bicubic}) == DegradationConfig()  # nothing trained: the default
    assert for_models({"a": half, "bicubic": upsample_bicubic}) == half.degradation
    with pytest.warns(UserWarning, match=r"a was trained with DegradationConfig\(sigma=0.5"):
        assert for_models({"a": half}, DegradationConfig()) == DegradationConfig()
    with pytest.raises(CSRIPError, match="different degradations"):
        for_models({"a": half, "b": one})
