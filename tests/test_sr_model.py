"""CascadedSR / BaselineSR (paper Sec. 3.1, 3.4, 4.3): shapes, size, FLOPs, clipping, checkpoints."""
from dataclasses import replace

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from csrip_lib.core.checkpoint import save_checkpoint
from csrip_lib.core.config import SRConfig, get_preset, to_dict
from csrip_lib.core.console import CSRIPError
from csrip_lib.core.degradation import make_pyramid, upsample_bicubic
from csrip_lib.models import BaselineSR, CascadedSR, build_model
from csrip_lib.models.registry import load_sr
from csrip_lib.models.sr import shape_table


def _meta(cls, preset):
    with torch.device("meta"):
        return cls.from_preset(preset).eval()


def _flops(model, **kw):
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, 24, 24, device="meta"), **kw)
    return counter.get_total_flops()


def test_paper_preset_has_the_size_of_our_reading_of_sec_3_1():
    """Our reading of Sec. 3.1/3.4 (the paper gives only "53 layers" and the widths, no parameter
    count): 50 convolutions on the main path, 52 with the branch heads, 50.19M parameters and 160 GFLOP
    (80 G multiply-adds) per 24x24 image. A check of our reading, not of a number the paper states."""
    m = _meta(CascadedSR, "paper")
    convs = [n for n, c in m.named_modules() if isinstance(c, torch.nn.Conv2d)]
    assert len(convs) == 52 and len([n for n in convs if not n.startswith("heads")]) == 50
    assert m.num_parameters() == 50_190_729
    assert _flops(m) == pytest.approx(160e9, rel=0.01)  # main output (branches off at test time)
    assert _flops(m, all_scales=True) > _flops(m)  # the branches cost a little extra in training
    # single 9x9 conv RGB branch heads (Fig. 11 "k9n3s1"); a 512-wide head would add ~16.7M
    assert sum(p.numel() for p in m.heads.parameters()) < 1e5


def test_baseline_has_the_cascades_compute_and_21_blocks():
    b = _meta(BaselineSR, "paper")
    assert _flops(b) == pytest.approx(_flops(_meta(CascadedSR, "paper")), rel=1e-3)
    assert len(b.body) == 21


@pytest.mark.parametrize("preset, max_params", [("small", 3e6), ("tiny", 1e5)])
def test_smaller_presets_are_small(preset, max_params):
    assert _meta(CascadedSR, preset).num_parameters() < max_params


@pytest.mark.parametrize("preset", ["paper", "small", "tiny"])
def test_shapes_at_every_scale(preset):
    m = _meta(CascadedSR, preset)
    x = torch.empty(2, 3, 24, 24, device="meta")
    assert [tuple(y.shape) for y in m(x, all_scales=True)] == [(2, 3, 48, 48), (2, 3, 96, 96), (2, 3, 192, 192)]
    assert tuple(m(x).shape) == (2, 3, 192, 192)
    assert tuple(_meta(BaselineSR, preset)(x).shape) == (2, 3, 192, 192)


def test_real_forward_is_clipped_and_works_channels_last_and_bf16():
    torch.manual_seed(0)
    m = CascadedSR.from_preset("tiny").eval()
    with torch.no_grad():
        m.tail[-1].conv.bias.fill_(3.0)  # push the output far above 1
        y = m(torch.rand(2, 3, 24, 24))
        assert y.min() >= 0 and y.max() == 1
        m = m.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            z = m(torch.rand(2, 3, 24, 24).contiguous(memory_format=torch.channels_last), all_scales=True)
    assert [t.shape[-1] for t in z] == [48, 96, 192]


def test_out_of_range_outputs_still_get_gradients_in_training():
    """The clipping trap (models/sr.py, "Clipping"): a hard clamp passes no gradient once the output leaves [0, 1]."""
    torch.manual_seed(0)
    m = CascadedSR.from_preset("tiny").train()
    with torch.no_grad():
        for head in (*m.heads, m.tail[-1]):
            head.conv.bias.fill_(-5.0)  # every pixel far below 0: an all-black image
    outs = m(torch.rand(2, 3, 24, 24), all_scales=True)
    for y in outs:
        assert y.min() >= 0 and y.max() <= 1  # forward still clips
    sum((y - 0.5).pow(2).mean() for y in outs).backward()
    for head in (*m.heads, m.tail[-1]):
        assert head.conv.bias.grad.abs().min() > 0
        assert (head.conv.bias.grad < 0).all()  # the gradient pushes the output back up into range
    # eval mode is a real clamp: no gradient outside the range
    m.eval().zero_grad()
    m(torch.rand(2, 3, 24, 24)).sum().backward()
    assert m.tail[-1].conv.bias.grad.abs().max() == 0


def test_wrong_input_is_a_clear_error():
    m = CascadedSR.from_preset("tiny")
    with pytest.raises(ValueError, match="N x 3 x 24 x 24"):
        m(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="N x 3 x 24 x 24"):
        m(torch.rand(3, 24, 24))
    with pytest.raises(TypeError, match="float"):
        m(torch.zeros(1, 3, 24, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="no intermediate"):
        BaselineSR.from_preset("tiny")(torch.rand(1, 3, 24, 24), all_scales=True)
    with pytest.raises(ValueError, match="unknown SR architecture"):
        build_model(SRConfig(arch="unet"))


def test_blocks_start_as_identity_and_outputs_start_mid_grey():
    torch.manual_seed(0)
    m = CascadedSR(replace(get_preset("tiny").sr, global_skip=False))  # as the paper/small presets
    assert all(blk.body[-1].weight.abs().max() == 0 for blk in m.modules() if hasattr(blk, "body"))
    y = m.eval()(torch.rand(4, 3, 24, 24))
    assert 0.2 < y.mean() < 0.8 and 0 < y.min() and y.max() < 1  # inside the clip range: gradients flow


def test_global_skip_starts_at_bicubic_and_is_off_in_the_paper_presets():
    assert not get_preset("paper").sr.global_skip and not get_preset("small").sr.global_skip
    torch.manual_seed(0)
    lr = make_pyramid(torch.rand(2, 3, 192, 192))["lr"]
    for model in (CascadedSR.from_preset("tiny"), BaselineSR.from_preset("tiny")):
        out = model.eval()(lr, all_scales=isinstance(model, CascadedSR))
        for y in out if isinstance(out, list) else [out]:
            torch.testing.assert_close(y, upsample_bicubic(lr, y.shape[-1] // 24))  # starts at bicubic


def test_build_and_load_roundtrip(tmp_path):
    cfg = get_preset("tiny").sr
    for arch in ("cascaded", "baseline"):
        cfg.arch = arch
        torch.manual_seed(1)
        m = build_model(cfg)
        assert type(m) is (CascadedSR if arch == "cascaded" else BaselineSR)
        path = save_checkpoint({"model": m.state_dict(), "config": {"sr": to_dict(cfg)}}, tmp_path / f"{arch}.pt", "sr")
        loaded = load_sr(path)
        assert not loaded.training and type(loaded) is type(m)
        x = torch.rand(2, 3, 24, 24)
        torch.testing.assert_close(loaded(x), m.eval()(x))
    save_checkpoint({"model": {}, "config": {}}, tmp_path / "rec.pt", "recognizer")
    with pytest.raises(CSRIPError, match="expected 'sr'"):
        load_sr(tmp_path / "rec.pt")


def test_shape_table_follows_the_real_forward():
    df = shape_table(CascadedSR.from_preset("tiny"))
    assert df["output (C, H, W)"].iloc[-1] == (3, 192, 192)
    assert {(3, 48, 48), (3, 96, 96)} <= set(df["output (C, H, W)"])
    assert df["parameters"].sum() == CascadedSR.from_preset("tiny").num_parameters()
