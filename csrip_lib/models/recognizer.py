"""Identity priors: complex SqueezeNet recognizers on residual images (paper Sec. 3.2, 3.4).

"Complex SqueezeNet" is SqueezeNet v1.0 with both bypass kinds of Iandola et al. (2016), Sec. 6:
eight fire modules fire2..fire9 (torchvision's `Fire`), identity shortcuts around the fire modules
whose input and output widths match (fire3, fire5, fire7, fire9: "simple bypass") and 1x1-conv
shortcuts around the others (fire2, fire4, fire6, fire8: "complex bypass"). The paper counts
"9 fire modules"; SqueezeNet has eight, plus the conv1 stem, which we take it to mean.
Global average pooling gives the embedding (`features`); a linear layer gives the logits, trained
with softmax cross-entropy (Eq. 1). conv10 of the original (a 1x1 conv before the pooling) is the
same linear map applied before instead of after the average, so it is written as `nn.Linear`.

Three adaptations for the small residual images the priors see (none changes the topology):
- Input scale. Residuals `x - g_sigma * x` are tiny (std ~1e-3 at 48 px, sigma 1/3), so the input is
  standardized by a BatchNorm2d without affine part, with a cumulative average (exact from step 1).
- Normalization (`cfg.batch_norm`, default on). SqueezeNet v1.0 has no BatchNorm; trained from scratch
  on residuals it stays at chance level for a long time (measured: 45 Adam steps on 4 synthetic
  identities, chance accuracy without, 100% training accuracy with). So the stem convolution and every
  fire module's output are batch-normalized: y = BN(fire(x)) + bypass(x). `batch_norm=False` gives
  the original. Use `train_recognizers.recalibrate_bn` before evaluating a short run.
- Image size. v1.0 downsamples 32x (stride-2 stem + three max-pools), which would leave a 48 px input
  with a 1x1 map after fire9. The stem here is padded ("same") and its stride is 1 for inputs below
  96 px, 2 otherwise, so fire9 sees 6x6 at 48 and 96 px and 12x12 at 192 px.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models.squeezenet import Fire

from ..core.checkpoint import checked_config, load_checkpoint, restore
from ..core.config import RESIDUAL_SIGMAS, RecognizerConfig
from ..core.console import CSRIPError
from ..core.degradation import residual

# SqueezeNet v1.0 fire modules: (squeeze, expand1x1 = expand3x3); max-pools after fire4 and fire8.
FIRES = [(16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192), (64, 256), (64, 256)]
POOL_AFTER = {2, 6}  # indices into FIRES (fire4, fire8)


class BypassFire(nn.Module):
    """A fire module with a simple (identity) or complex (1x1 conv) bypass: y = fire(x) + shortcut(x)."""

    def __init__(self, cin: int, squeeze: int, expand: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.fire = Fire(cin, squeeze, expand, expand)
        self.norm = nn.BatchNorm2d(2 * expand) if batch_norm else nn.Identity()
        self.shortcut = nn.Identity() if cin == 2 * expand else nn.Conv2d(cin, 2 * expand, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fire(x)) + self.shortcut(x)


class SqueezeNetRecognizer(nn.Module):
    """Complex SqueezeNet over residual images of one size (48, 96 or 192 px); forward -> logits."""

    def __init__(self, num_classes: int, cfg: RecognizerConfig = RecognizerConfig(),
                 image_size: int = 192) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a recognizer needs at least 2 identities, got num_classes={num_classes}")
        if image_size < 32:
            raise ValueError(f"image_size must be at least 32 px, got {image_size}")
        self.num_classes, self.cfg, self.image_size = num_classes, cfg, image_size
        ch = lambda c: max(2, round(c * cfg.width))
        stem = ch(96)
        layers: list[nn.Module] = [
            nn.BatchNorm2d(3, affine=False, momentum=None),  # cumulative average: exact from step 1
            nn.Conv2d(3, stem, 7, stride=1 if image_size < 96 else 2, padding=3),
            nn.BatchNorm2d(stem) if cfg.batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        cin = stem
        for i, (squeeze, expand) in enumerate(FIRES):
            layers.append(BypassFire(cin, ch(squeeze), ch(expand), cfg.batch_norm))
            cin = 2 * ch(expand)
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.body = nn.Sequential(*layers)
        self.embedding_dim = cin
        self.classifier = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(cin, num_classes))

    @property
    def sigma(self) -> float:
        """The residual-image sigma of this recognizer's scale (paper Sec. 3.3)."""
        return RESIDUAL_SIGMAS[self.image_size]

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.image_size,) * 2:
            raise ValueError(f"expected residual images N x 3 x {self.image_size} x {self.image_size}, "
                             f"got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding N x embedding_dim of residual images x."""
        self._check(x)
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Identity logits N x num_classes of residual images x (softmax is in the loss, Eq. 1)."""
        return self.classifier(self.features(x))

    def residual_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of plain images in [0, 1]: the residual `x - g_sigma * x` is taken first (Fig. 4)."""
        return self(residual(images, self.sigma))


def load_recognizer(path: str | Path, map_location: str | torch.device = "cpu") -> SqueezeNetRecognizer:
    """One frozen eval-mode recognizer from a "recognizer" checkpoint (identities in `.identities`).
    Identities, image size and config are checked before the model is built (`checkpoint.restore`)."""
    ckpt = load_checkpoint(path, kind="recognizer", map_location=map_location)
    identities, size = ckpt.get("identities"), ckpt.get("image_size")
    if not isinstance(identities, list | tuple) or len(identities) < 2 \
            or not all(isinstance(i, str) for i in identities):
        raise CSRIPError(f"{path}: its 'identities' is not a list of at least 2 identity names (edited file?)")
    if size not in RESIDUAL_SIGMAS or type(size) is not int:
        raise CSRIPError(f"{path}: its image_size {size!r:.40} is not one of the recognizer scales "
                         f"{sorted(RESIDUAL_SIGMAS)} (edited file?)")
    cfg = checked_config(RecognizerConfig, ckpt["config"].get("recognizer"), path, "recognizer")
    model = restore(lambda: SqueezeNetRecognizer(len(identities), cfg, image_size=size), ckpt, path, map_location)
    model.identities = list(identities)
    data = ckpt["config"].get("data")
    model.identities_sha256 = data.get("identities_sha256") if isinstance(data, dict) else None
    model.requires_grad_(False)
    return model.eval()


def load_recognizers(run_dir: str | Path, map_location: str | torch.device = "cpu",
                     scales: tuple[int, ...] = (48, 96, 192)) -> dict[int, SqueezeNetRecognizer]:
    """The three identity priors of a `csrip train-recognizers` run: {48: m, 96: m, 192: m}."""
    run_dir = Path(run_dir)
    paths = {s: run_dir / f"rec{s}" / "best.pt" for s in scales}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise CSRIPError(f"no trained recognizer at {', '.join(missing)}; train them with "
                         f"`csrip train-recognizers --data DIR --preset P --out {run_dir}`")
    models = {s: load_recognizer(p, map_location) for s, p in paths.items()}
    for s, m in models.items():
        if m.image_size != s:
            raise CSRIPError(f"{paths[s]} holds a {m.image_size} px recognizer, expected {s} px")
    return models
