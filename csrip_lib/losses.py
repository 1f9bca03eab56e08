"""Training losses: the SSIM loss of paper Sec. 3.3 (Eq. 2-3) and the C-SRIP objective (Eq. 4).

SSIM (Wang et al. 2004) compares two images window by window through their local means
(luminance), standard deviations (contrast) and correlation (structure). Eq. 3 computes all
local statistics with one Gaussian window g (11 x 11, sigma 1.5) as convolutions::

    mu1 = x * g,  sigma1^2 = (x . x) * g - mu1^2,  sigma12 = (x . y) * g - mu1 mu2   (same for y)
    SSIM(x, y) = (2 mu1 mu2 + C1)(2 sigma12 + C2) / ((mu1^2 + mu2^2 + C1)(sigma1^2 + sigma2^2 + C2))

and Eq. 2 turns the mean of that map into a loss, L = (1 - mean SSIM) / 2, in [0, 1].

Conventions (the SSIM reference implementation, identical to
`skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1)`):

- images are float N x C x H x W in [0, `data_range`] (C = 1 or 3), channels scored separately;
- C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = `data_range` = 1. On 8-bit images (L = 255) that is
  6.50 and 58.52; the paper quotes 6.55 and 58.98, i.e. (K 256)^2. The 0.8 % difference in the
  constants changes SSIM by well under 1e-3; pass `data_range=256/255` to get the paper's values;
- 'valid' filtering: the map covers only windows that lie fully inside the image, so it is
  (H - 10) x (W - 10); skimage computes the same numbers by filtering and then cropping 5 px.

Implementation: the Gaussian is separable, so the moment images are stacked into one tensor and
filtered in a single pass of two depthwise convolutions (1 x 11, then 11 x 1): 22 multiply-adds per
pixel and moment instead of 121, one kernel launch per direction. Eq. 3 only ever uses the sum
sigma1^2 + sigma2^2, and filtering is linear, so x^2 + y^2 is filtered as one moment: four moment
images (x, y, x^2 + y^2, xy) instead of five, the same numbers with 20 % less work.
In float64 (the evaluation path, `csrip_lib.evaluation.metrics`) PyTorch has no fast depthwise convolution, so the
two 1-D passes are matrix products with a banded Gaussian matrix instead (BLAS; ~15x faster on a CPU,
the same sums to rounding, ~1e-16).
Statistics are always accumulated in float32 (float64 if an input is float64), outside any
autocast region, so the loss is safe to call inside a bf16/fp16 autocast training step.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .core.config import RESIDUAL_SIGMAS
from .core.console import CSRIPError
from .core.degradation import residual

WINDOW_SIZE = 11  # Gaussian window g of Eq. 3
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03  # C1 = (K1 L)^2, C2 = (K2 L)^2
RANGE_TOLERANCE = 1e-3  # allowed excursion outside [0, data_range] (interpolation overshoot, rounding)


def _check_pair(x: torch.Tensor, y: torch.Tensor, data_range: float, check_range: bool) -> None:
    """Raise a TypeError/ValueError that says what was expected if (x, y) cannot be scored."""
    if not (isinstance(data_range, int | float) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"ssim: data_range must be a positive finite number (1 for images in [0, 1], "
                         f"255 for 0..255), got {data_range!r}")
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"ssim: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"ssim: {name} must be a float tensor with values in [0, {data_range:g}], "
                            f"got dtype {t.dtype}; convert 8-bit images with `x.float() / 255`")
        if t.ndim != 4 or t.shape[1] not in (1, 3):
            raise ValueError(f"ssim: {name} must be a batch N x C x H x W with C = 1 or 3, "
                             f"got shape {tuple(t.shape)}")
        if min(t.shape[-2:]) < WINDOW_SIZE:
            raise ValueError(f"ssim: images must be at least {WINDOW_SIZE} x {WINDOW_SIZE} (the Gaussian "
                             f"window of Eq. 3), got {t.shape[-2]} x {t.shape[-1]}")
    if x.shape != y.shape:
        raise ValueError(f"ssim: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.device != y.device:
        raise ValueError(f"ssim: x and y must be on the same device, got {x.device} and {y.device}")
    if check_range:  # one device sync for both images; pass check_range=False on hot paths
        bounds = torch.stack([v.float() for t in (x, y) for v in torch.aminmax(t.detach())]).tolist()
        for name, lo, hi in (("x", *bounds[:2]), ("y", *bounds[2:])):
            if not (lo >= -RANGE_TOLERANCE and hi <= data_range + RANGE_TOLERANCE):  # NaN fails too
                raise ValueError(
                    f"ssim: {name} must hold values in [0, {data_range:g}], found min {lo:.4g}, max {hi:.4g}; "
                    f"scale 8-bit images by 1/255, clamp interpolated images with `.clamp(0, 1)`, "
                    f"or pass data_range / check_range=False")


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA, *,
                    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """The 1-D factor of the separable Gaussian window g (sums to 1): g_2d = outer(w, w)."""
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    w = torch.exp(-0.5 * (r / sigma) ** 2)
    return w / w.sum()


def _banded(n: int, g: torch.Tensor) -> torch.Tensor:
    """n x (n - 10) matrix whose column j holds g at rows j..j+10: a 'valid' 1-D filter as x @ M."""
    m = torch.zeros(n, n - WINDOW_SIZE + 1, dtype=g.dtype, device=g.device)
    for j in range(WINDOW_SIZE):
        m.diagonal(-j).copy_(g[j])
    return m


def _gaussian_filter(m: torch.Tensor) -> torch.Tensor:
    """'Valid' separable filtering of N x K x H x W moment images with g (1 x 11, then 11 x 1):
    depthwise convolutions in float32/16, banded matrix products in float64 (module docstring)."""
    g = gaussian_window(dtype=m.dtype, device=m.device)
    if m.dtype == torch.float64:
        return _banded(m.shape[-2], g).T @ (m @ _banded(m.shape[-1], g))
    k = m.shape[1]
    m = F.conv2d(m, g.view(1, 1, 1, -1).expand(k, 1, 1, WINDOW_SIZE), groups=k)
    return F.conv2d(m, g.view(1, 1, -1, 1).expand(k, 1, WINDOW_SIZE, 1), groups=k)


def ssim_map(x: torch.Tensor, y: torch.Tensor, *, data_range: float = 1.0,
             check_range: bool = True) -> torch.Tensor:
    """Local SSIM map of Eq. 3: N x C x (H - 10) x (W - 10), float32 (float64 for float64 input).

    x, y: N x C x H x W float images in [0, data_range], C in {1, 3}, H, W >= 11, same device.
    Differentiable in both arguments; symmetric; 1 where the images agree.
    `check_range=False` skips the value check (it costs one device sync) in training loops.
    """
    _check_pair(x, y, data_range, check_range)
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    with torch.autocast(device_type=x.device.type, enabled=False):
        # channels-last: oneDNN's depthwise convolution is ~3x faster on CPU in that layout
        fmt = torch.contiguous_format if dtype == torch.float64 else torch.channels_last  # float64: BLAS
        x = x.to(dtype, memory_format=fmt)
        y = y.to(dtype, memory_format=fmt)
        moments = _gaussian_filter(torch.cat([x, y, x * x + y * y, x * y], dim=1))  # N x 4C: at once
        mu1, mu2, sq, xy = moments.contiguous().chunk(4, dim=1)
        mu12, mu_sq = mu1 * mu2, mu1 * mu1 + mu2 * mu2
        cov = xy - mu12  # sigma12
        var_sum = sq - mu_sq  # sigma1^2 + sigma2^2
        return ((2 * mu12 + c1) * (2 * cov + c2)) / ((mu_sq + c1) * (var_sum + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean", *, data_range: float = 1.0,
         check_range: bool = True) -> torch.Tensor:
    """Mean SSIM (E_x[SSIM(x, y)] of Eq. 2): a scalar ("mean") or one value per image ("none")."""
    if reduction not in ("mean", "none"):
        raise ValueError(f"ssim: reduction must be 'mean' or 'none', got {reduction!r}")
    m = ssim_map(x, y, data_range=data_range, check_range=check_range)
    return m.mean() if reduction == "mean" else m.flatten(1).mean(1)


class SSIMLoss(nn.Module):
    """Eq. 2: L_SSIM = (1 - mean SSIM(pred, target)) / 2, in [0, 1]; 0 for identical images.

    `check_range` (default True) validates that both images lie in [0, data_range]; training loops
    whose outputs are clipped by construction can switch it off to avoid a device sync per step.
    """

    def __init__(self, data_range: float = 1.0, check_range: bool = True):
        super().__init__()
        self.data_range = data_range
        self.check_range = check_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        s = ssim(pred, target, data_range=self.data_range, check_range=self.check_range)
        return 0.5 * (1.0 - s)

    def extra_repr(self) -> str:
        return f"data_range={self.data_range}, check_range={self.check_range}"


# --------------------------------------------------------------------------------------------------
# The C-SRIP objective (Eq. 4)


def check_identity_prior(alpha: float, recognizers) -> None:
    """The one rule of Eq. 4's identity term: alpha > 0 needs the trained recognizers (Sec. 3.4), so
    that C-SRIP never trains silently without its prior. `train_sr`, `ablation` and `CSRIPLoss` ask here."""
    if alpha > 0 and recognizers is None:
        raise CSRIPError(f"the identity loss (alpha = {alpha:g} > 0) needs trained recognizers: pass "
                         "--recognizers runs/X (from `csrip train-recognizers`), or --alpha 0 to train without them")


class CSRIPLoss(nn.Module):
    """Eq. 4: sum over scales j of [ L_rec(x_hat_j, x_j) + alpha * L_CE(recognizer_j(residual(x_hat_j)), y) ].

    Scales D = {48, 96, 192} (2x, 4x, hr) with `multiscale=True`, only {192} otherwise. L_rec is the SSIM
    loss of Eq. 2 (`reconstruction="ssim"`) or the MSE. The identity term feeds the residual image
    `x_hat - g_sigma * x_hat` of each SR output (sigma of that scale, as in the recognizer's training,
    Sec. 3.3) to the frozen recognizer of that scale; gradients flow through the recognizer into the SR
    output, its weights never change. It is switched off by `alpha=0` (alpha > 0 without recognizers is an
error, `check_identity_prior`), so the five
    Table 2 models are configurations of this one loss:

        Baseline   reconstruction="mse",  multiscale=False, alpha=0   (with the BaselineSR network)
        B+SSIM     reconstruction="ssim", multiscale=False, alpha=0   (BaselineSR)
        C+SSIM     reconstruction="ssim", multiscale=False, alpha=0   (CascadedSR)
        C+SSIM+M   reconstruction="ssim", multiscale=True,  alpha=0
        C-SRIP     reconstruction="ssim", multiscale=True,  alpha=0.001, recognizers for 48/96/192

    Identity labels. `forward` takes labels as indices into `identities` (the training data's identity
    names); they are mapped to the recognizers' classes by name. A sample whose identity the recognizers
    do not know (or label -1) gets no identity term; CE is averaged over the known samples of the batch
    (0 if there are none). Without `identities`, labels are taken as recognizer class indices.

    Returns (total, terms): terms are detached scalars named "<rec><scale>" (e.g. "ssim48", "mse192":
    the reconstruction loss at that scale) and "ce<scale>" (unweighted cross-entropy, Eq. 1), so
    total = sum(rec terms) + alpha * sum(ce terms).
    """

    def __init__(self, recognizers: dict[int, nn.Module] | None = None, alpha: float = 0.001,
                 reconstruction: str = "ssim", multiscale: bool = True,
                 identities: list[str] | None = None):
        super().__init__()
        if reconstruction not in ("ssim", "mse"):
            raise ValueError(f"reconstruction must be 'ssim' or 'mse', got {reconstruction!r}")
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        check_identity_prior(alpha, recognizers)
        self.reconstruction, self.multiscale, self.alpha = reconstruction, multiscale, float(alpha)
        self.scales = (48, 96, 192) if multiscale else (192,)
        self.rec_loss = SSIMLoss(check_range=False) if reconstruction == "ssim" else nn.MSELoss()
        self.recognizers = nn.ModuleDict()
        if alpha > 0:
            missing = [s for s in self.scales if s not in recognizers]
            if missing:
                raise ValueError(f"the identity loss at scales {list(self.scales)} needs a recognizer for each; "
                                 f"missing {missing} (got {sorted(recognizers)})")
            for s in self.scales:
                rec = recognizers[s]
                rec.requires_grad_(False)
                self.recognizers[str(s)] = rec.eval()
        self.register_buffer("label_map", self._label_map(identities), persistent=False)

    @classmethod
    def from_config(cls, cfg, recognizers: dict[int, nn.Module] | None = None,
                    identities: list[str] | None = None) -> "CSRIPLoss":
        """From a `config.LossConfig` (reconstruction, multiscale, alpha)."""
        return cls(recognizers, alpha=cfg.alpha, reconstruction=cfg.reconstruction,
                   multiscale=cfg.multiscale, identities=identities)

    @property
    def uses_identity(self) -> bool:
        return len(self.recognizers) > 0

    def _label_map(self, identities: list[str] | None) -> torch.Tensor | None:
        """Data label -> recognizer class (-1 where unknown), by identity name."""
        if not self.uses_identity or identities is None:
            return None
        known = [getattr(r, "identities", None) for r in self.recognizers.values()]
        if any(k is None for k in known):
            raise ValueError("mapping data identities needs recognizers with an `.identities` list "
                             "(as load_recognizers returns); or pass identities=None and class indices")
        if any(k != known[0] for k in known[1:]):
            raise ValueError("the recognizers were trained on different identity lists; train all three "
                             "on the same data (csrip train-recognizers)")
        index = {name: i for i, name in enumerate(known[0])}
        return torch.tensor([index.get(name, -1) for name in identities], dtype=torch.long)

    def known_fraction(self, labels: torch.Tensor) -> float:
        """Fraction of `labels` whose identity the recognizers know (0 without identity term)."""
        return float((self._recognizer_labels(labels) >= 0).float().mean()) if self.uses_identity else 0.0

    def _recognizer_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Recognizer class per sample, -1 where unknown."""
        if self.label_map is not None:
            n = len(self.label_map)
            labels = torch.where((labels >= 0) & (labels < n), self.label_map[labels.clamp(0, n - 1)], -1)
        k = getattr(next(iter(self.recognizers.values())), "num_classes", None)
        return labels if k is None else torch.where(labels < k, labels, -1)

    def train(self, mode: bool = True) -> "CSRIPLoss":
        super().train(mode)
        self.recognizers.eval()  # frozen priors: dropout off, BatchNorm statistics fixed
        return self

    def forward(self, outputs: torch.Tensor | list[torch.Tensor], targets, labels: torch.Tensor | None = None,
                detach_terms: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """outputs: model(lr, all_scales=True) ([x48, x96, x192]) or the 192 px output alone;
        targets: the pyramid of `degradation.make_pyramid` (or any list of images), matched by size;
        labels: N identity labels (needed when the identity term is on);
        detach_terms=False keeps each term's graph (to take per-term gradients)."""
        outs = {o.shape[-1]: o for o in (outputs if isinstance(outputs, (list, tuple)) else [outputs])}
        tgts = {t.shape[-1]: t for t in (targets.values() if isinstance(targets, dict) else targets)}
        missing = [s for s in self.scales if s not in outs]
        if missing:
            raise ValueError(f"the {'multi-scale ' if self.multiscale else ''}loss needs SR outputs at "
                             f"{list(self.scales)} px, missing {missing}; call model(lr, all_scales=True)")
        if self.uses_identity and labels is None:
            raise ValueError("the identity term (alpha > 0) needs the identity labels of the batch")
        y = self._recognizer_labels(labels) if self.uses_identity else None
        total, terms = 0.0, {}
        for s in self.scales:
            if s not in tgts:
                raise ValueError(f"no {s} px target among the targets ({sorted(tgts)} px)")
            pred, target = outs[s].float(), tgts[s].float()
            with torch.autocast(device_type=pred.device.type, enabled=False):
                rec = self.rec_loss(pred, target)
            terms[f"{self.reconstruction}{s}"] = rec
            total = total + rec
            if self.uses_identity:
                ce = self._identity_term(self.recognizers[str(s)], pred, y, s)
                terms[f"ce{s}"] = ce
                total = total + self.alpha * ce
        return total, {k: v.detach() for k, v in terms.items()} if detach_terms else terms

    @staticmethod
    def _identity_term(recognizer: nn.Module, pred: torch.Tensor, y: torch.Tensor, size: int) -> torch.Tensor:
        """L_CE (Eq. 1) of the recognizer on the residual of the SR output, over samples with known identity."""
        known = y >= 0
        if not bool(known.any()):
            return pred.new_zeros(())
        sigma = getattr(recognizer, "sigma", RESIDUAL_SIGMAS[size])
        with torch.autocast(device_type=pred.device.type, enabled=False):
            r = residual(pred[known], sigma)  # in float32: residuals are a few hundredths
        return F.cross_entropy(recognizer(r).float(), y[known])
