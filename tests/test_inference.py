"""The fast inference path (csrip_lib.evaluation.inference) computes what the plain model computes.

CPU only: the CUDA parts (bf16 autocast on the GPU, channels-last, compile with inductor, CUDA graphs)
are exercised by benchmarks/bench_sr.py on a GPU machine. Here the same code paths that do not need
CUDA are checked: chunking, fixed-size padding (through torch.compile with the tracing-only "eager"
backend), the compile fallback, bf16 autocast on the CPU, input validation and upscale_batches.
"""
from __future__ import annotations

import pytest
import torch

from csrip_lib.core.config import DegradationConfig
from csrip_lib.core.console import CSRIPError
from csrip_lib.core.degradation import degrade
from csrip_lib.core.runtime import check_lr, pick_device
from csrip_lib.evaluation.inference import Upscaler, upscale_batches
from csrip_lib.models import CascadedSR


@pytest.fixture()
def model() -> CascadedSR:
    """A tiny cascade whose residual blocks do something (gamma = 0 at init makes them identities)
    and whose BatchNorm layers have non-trivial running statistics, as after training."""
    torch.manual_seed(0)
    m = CascadedSR.from_preset("tiny")
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.fixture()
def lr(hr_faces) -> torch.Tensor:
    """Six LR faces made with the paper's degradation (real LFW faces when CSRIP_DATA is set)."""
    return degrade(hr_faces.float(), 8)


def reference(model: torch.nn.Module, lr: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(lr)


def test_cpu_path_matches_plain_model(model, lr):
    expected = reference(model, lr)
    up = Upscaler(model, device="cpu")
    assert up.dtype == torch.float32 and not up.compiled and not up.cuda_graphs
    out = up(lr)
    assert out.shape == (len(lr), 3, 192, 192) and out.dtype == torch.float32
    assert out.device == lr.device and out.is_contiguous()
    assert 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
    assert out.std() > 0.01  # the model does something: a constant output would hide a broken path
    out += 1  # an ordinary tensor, not an inference-mode one: callers may modify it in place


@pytest.mark.parametrize("n, max_batch", [(1, 4), (5, 2), (6, 4), (6, 6), (7, 3)])
def test_any_batch_size_is_chunked_consistently(model, lr, n, max_batch):
    x = torch.cat([lr, lr.flip(-1)])[:n]
    out = Upscaler(model, device="cpu", max_batch=max_batch)(x)
    torch.testing.assert_close(out, reference(model, x), rtol=0, atol=1e-5)


def test_empty_batch(model):
    out = Upscaler(model, device="cpu")(torch.empty(0, 3, 24, 24))
    assert out.shape == (0, 3, 192, 192)


def test_fixed_size_padding_through_compile(model, lr):
    """Compiled code sees fixed batch sizes: chunks are zero-padded up to them; results are unchanged."""
    up = Upscaler(model, device="cpu", compile=True, compile_backend="eager", max_batch=4,
                  graph_batch_sizes=(2,))
    assert up.compiled
    assert [up._fixed_size(n) for n in (1, 2, 3, 4)] == [2, 2, 4, 4]
    x = lr[:5]  # chunks of 4 and 1 -> run at 4 and 2
    torch.testing.assert_close(up(x), reference(model, x), rtol=0, atol=1e-5)
    assert up.compiled  # nothing fell back


def test_compile_failure_falls_back_to_eager_with_a_warning(model, lr):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no compiler here")

    up = Upscaler(model, device="cpu", compile=True, compile_backend=broken_backend)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        out = up(lr)
    assert not up.compiled
    torch.testing.assert_close(out, reference(model, lr), rtol=0, atol=1e-5)


def test_bf16_autocast_stays_close(model, lr):
    out = Upscaler(model, device="cpu", dtype="bfloat16")(lr[:2])  # bf16 is slow on most CPUs
    assert out.dtype == torch.float32
    err = (out - reference(model, lr[:2])).abs()
    assert err.mean() < 0.01 and err.max() < 0.1, (err.mean(), err.max())


@pytest.mark.parametrize("bad, error, words", [
    (torch.rand(2, 3, 32, 32), ValueError, "N x 3 x 24 x 24"),
    (torch.rand(3, 24, 24), ValueError, "got shape (3, 24, 24)"),
    (torch.rand(2, 1, 24, 24), ValueError, "N x 3 x 24 x 24"),
    ((torch.rand(2, 3, 24, 24) * 255).to(torch.uint8), TypeError, "/ 255"),
    (torch.rand(2, 3, 24, 24) * 255, ValueError, "divided by 255"),
    (torch.full((1, 3, 24, 24), float("nan")), ValueError, "values in [0, 1]"),
    ([[0.5]], TypeError, "torch.Tensor"),
])
def test_bad_input_gives_a_clear_error(model, bad, error, words):
    up = Upscaler(model, device="cpu")
    with pytest.raises(error) as e:
        up(bad)
    assert words in str(e.value)


def test_options_are_validated(model):
    with pytest.raises(ValueError, match="dtype"):
        Upscaler(model, device="cpu", dtype="int8")
    with pytest.raises(ValueError, match="CUDA"):
        Upscaler(model, device="cpu", cuda_graphs=True)
    with pytest.raises(CSRIPError, match="unknown device"):
        pick_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(CSRIPError, match="no CUDA GPU"):
            pick_device("cuda")
    check_lr(torch.rand(1, 3, 24, 24))  # a valid input passes silently


def test_upscale_batches_degrades_uint8_caches_on_the_device(model, hr_faces):
    hr8 = hr_faces.float().mul(255).round().to(torch.uint8)  # a decode-once HR cache
    up = Upscaler(model, device="cpu")
    batches = list(upscale_batches(up, hr8, batch_size=4, progress=False))
    assert [b.index for b in batches] == [slice(0, 4), slice(4, 6)]
    hr = torch.cat([b.hr for b in batches])
    lr = torch.cat([b.lr for b in batches])
    torch.testing.assert_close(hr, hr8.float() / 255)
    torch.testing.assert_close(lr, degrade(hr8.float() / 255, 8))
    torch.testing.assert_close(torch.cat([b.sr for b in batches]), reference(model, lr), rtol=0, atol=1e-5)

    lr8 = lr.mul(255).round().to(torch.uint8)  # LR caches are used as they are
    (only,) = upscale_batches(up, lr8, progress=False)
    assert only.hr is None and only.sr.shape == (6, 3, 192, 192)
    torch.testing.assert_close(only.lr, lr8.float() / 255)


def test_upscale_batches_degrades_as_the_model_was_trained(model, hr_faces):
    """A model trained at sigma 0.5 (`load_sr` sets `.degradation`) gets LR inputs made with 0.5."""
    hr8 = hr_faces.float().mul(255).round().to(torch.uint8)
    half = DegradationConfig(sigma=0.5)
    model.degradation = half
    try:
        (batch,) = upscale_batches(Upscaler(model, device="cpu"), hr8, progress=False)
    finally:
        del model.degradation
    torch.testing.assert_close(batch.lr, degrade(hr8.float() / 255, 8, half))
    assert (batch.lr - degrade(hr8.float() / 255, 8)).abs().max() > 0.01  # not the default sigma 1


@pytest.mark.parametrize("bad, error", [(torch.rand(2, 3, 192, 192), TypeError),
                                        (torch.zeros(2, 3, 100, 100, dtype=torch.uint8), ValueError)])
def test_upscale_batches_rejects_bad_caches(model, bad, error):
    with pytest.raises(error, match="uint8"):
        next(upscale_batches(Upscaler(model, device="cpu"), bad, progress=False))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/device_check.sh)")
def test_cuda_fast_path_matches_the_fp32_reference(model, lr):
    """bf16 + channels_last + compile + CUDA graphs on the GPU against fp32 on the CPU."""
    x = torch.cat([lr, lr.flip(-1), lr.flip(-2)] * 4)[:70]  # chunks of 1 and 3 -> graphs 1, 4; 70 -> 256
    expected = reference(model, x)
    up = Upscaler(model, device="cuda")  # moves the model: the reference above was computed first
    assert up.dtype == torch.bfloat16 and up.cuda_graphs
    for n in (1, 3, 70):
        out = up(x[:n].cuda())
        assert out.device.type == "cuda" and out.dtype == torch.float32 and out.shape == (n, 3, 192, 192)
        rel = float((out.cpu() - expected[:n]).norm() / expected[:n].norm())
        assert rel < 2e-2, (n, rel)  # bf16 operands: 1e-3 .. 1e-2
    assert up.compiled, "torch.compile fell back to eager (see the warning)"
    assert up._graphs[1] is not None and up._graphs[4] is not None, "CUDA graph capture failed"
    a, b = up(x[:1].cuda()), up(x[1:2].cuda())  # replays of one graph: outputs are copies, not views
    assert not torch.equal(a, b)
    torch.testing.assert_close(up(x[:1].cuda()), a)
    assert up(x[:2]).device.type == "cpu"  # results come back to the input's device
