"""CSRIPLoss (paper Eq. 4): which terms exist in each Table 2 configuration, label mapping, gradients."""
from dataclasses import replace

import pytest
import torch

from csrip_lib.core.config import LossConfig, RecognizerConfig, get_preset
from csrip_lib.core.console import CSRIPError
from csrip_lib.core.degradation import make_pyramid, residual
from csrip_lib.losses import CSRIPLoss, SSIMLoss
from csrip_lib.models import CascadedSR, SqueezeNetRecognizer

IDS = ["ann", "bob", "cid"]  # what the recognizers know


def _recognizers(seed=0):
    torch.manual_seed(seed)
    recs = {}
    for s in (48, 96, 192):
        r = SqueezeNetRecognizer(len(IDS), RecognizerConfig(width=0.25, dropout=0.5), image_size=s)
        r.identities = list(IDS)
        recs[s] = r
    return recs


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    model = CascadedSR(replace(get_preset("tiny").sr, global_skip=False))  # gradients reach every layer
    pyr = make_pyramid(torch.rand(4, 3, 192, 192))
    return model, pyr


@pytest.mark.parametrize("cfg, names", [
    (LossConfig("mse", multiscale=False, alpha=0), {"mse192"}),  # Baseline
    (LossConfig("ssim", multiscale=False, alpha=0), {"ssim192"}),  # B+SSIM, C+SSIM
    (LossConfig("ssim", multiscale=True, alpha=0), {"ssim48", "ssim96", "ssim192"}),  # C+SSIM+M
    (LossConfig("ssim", multiscale=True, alpha=0.01),  # C-SRIP
     {"ssim48", "ssim96", "ssim192", "ce48", "ce96", "ce192"}),
    (LossConfig("mse", multiscale=False, alpha=0.01), {"mse192", "ce192"}),
])
def test_terms_present_per_configuration_and_total_is_eq4(batch, cfg, names):
    model, pyr = batch
    loss = CSRIPLoss.from_config(cfg, _recognizers(), identities=IDS)
    outs = model(pyr["lr"], all_scales=True)
    total, terms = loss(outs, pyr, torch.tensor([0, 1, 2, 0]))
    assert set(terms) == names
    rec = sum(v for k, v in terms.items() if not k.startswith("ce"))
    ce = sum((v for k, v in terms.items() if k.startswith("ce")), torch.tensor(0.0))
    torch.testing.assert_close(total.detach(), rec + cfg.alpha * ce)
    # the reconstruction term at 192 px is exactly Eq. 2 / the MSE
    ref = SSIMLoss()(outs[-1], pyr["hr"]) if cfg.reconstruction == "ssim" else (outs[-1] - pyr["hr"]).pow(2).mean()
    torch.testing.assert_close(terms[f"{cfg.reconstruction}192"], ref.detach())


def test_identity_term_is_cross_entropy_of_the_residual(batch):
    model, pyr = batch
    recs = _recognizers()
    loss = CSRIPLoss(recs, alpha=1.0, identities=IDS)
    outs = model(pyr["lr"], all_scales=True)
    labels = torch.tensor([2, 0, 1, 1])
    _, terms = loss(outs, pyr, labels)
    for s, out in zip((48, 96, 192), outs):
        logits = recs[s](residual(out, {48: 1 / 3, 96: 1.0, 192: 7 / 3}[s]))
        torch.testing.assert_close(terms[f"ce{s}"], torch.nn.functional.cross_entropy(logits, labels).detach())


def test_no_identity_at_alpha_zero_and_no_alpha_without_recognizers(batch):
    model, pyr = batch
    outs = model(pyr["lr"], all_scales=True)
    for loss in (CSRIPLoss(None, alpha=0.0), CSRIPLoss(_recognizers(), alpha=0.0)):
        assert not loss.uses_identity
        _, terms = loss(outs, pyr)  # labels not needed
        assert not any(k.startswith("ce") for k in terms)
    with pytest.raises(CSRIPError, match=r"alpha = 0.001 > 0\) needs trained recognizers"):
        CSRIPLoss(None, alpha=0.001)  # the one rule (check_identity_prior): never silently off


def test_unknown_identities_are_ignored_by_name():
    """Labels index the training data's identity list; the recognizers' classes are matched by name."""
    data_ids = ["zed", "cid", "ann", "yan"]  # zed, yan unknown to the recognizers
    loss = CSRIPLoss(_recognizers(), alpha=1.0, identities=data_ids)
    assert loss._recognizer_labels(torch.tensor([0, 1, 2, 3, -1])).tolist() == [-1, 2, 0, -1, -1]
    assert loss.known_fraction(torch.tensor([0, 1, 2, 3])) == 0.5
    torch.manual_seed(0)
    model = CascadedSR.from_preset("tiny")
    pyr = make_pyramid(torch.rand(4, 3, 192, 192))
    outs = model(pyr["lr"], all_scales=True)
    _, terms = loss(outs, pyr, torch.tensor([0, 3, 0, 3]))  # nobody known: CE is 0, not NaN
    assert all(terms[f"ce{s}"] == 0 for s in (48, 96, 192))
    _, only_known = loss(outs, pyr, torch.tensor([1, 3, 0, 0]))  # only sample 0 (cid) counts
    _, alone = loss([o[:1] for o in outs], {k: v[:1] for k, v in pyr.items()}, torch.tensor([1]))
    torch.testing.assert_close(only_known["ce192"], alone["ce192"])


def test_recognizers_are_frozen_but_pass_gradients_to_the_sr_network(batch):
    model, pyr = batch
    recs = _recognizers()
    before = {k: v.clone() for k, v in recs[192].state_dict().items()}
    loss = CSRIPLoss(recs, alpha=1.0, reconstruction="mse", multiscale=False, identities=IDS).train()
    assert all(not p.requires_grad for p in loss.parameters())
    assert not any(m.training for m in loss.recognizers.modules())  # dropout off, BN statistics fixed
    model.zero_grad()
    total, terms = loss(model(pyr["lr"], all_scales=True), pyr, torch.tensor([0, 1, 2, 0]))
    (total - terms["mse192"]).backward()  # the identity term alone reaches the SR weights
    assert model.stem[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in recs[192].parameters())
    for k, v in recs[192].state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_bad_configurations_are_clear_errors(batch):
    model, pyr = batch
    with pytest.raises(ValueError, match="reconstruction"):
        CSRIPLoss(None, reconstruction="l1")
    with pytest.raises(ValueError, match=r"missing \[48, 96\]"):
        CSRIPLoss({192: _recognizers()[192]}, alpha=0.1)
    with pytest.raises(ValueError, match="all_scales=True"):
        CSRIPLoss(None, alpha=0.0)(model(pyr["lr"]), pyr)
    with pytest.raises(ValueError, match="labels"):
        CSRIPLoss(_recognizers(), alpha=0.1)(model(pyr["lr"], all_scales=True), pyr)
    recs = _recognizers()
    recs[96].identities = ["someone", "else", "entirely"]
    with pytest.raises(ValueError, match="different identity lists"):
        CSRIPLoss(recs, alpha=0.1, identities=IDS)
