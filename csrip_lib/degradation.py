"""`csrip_lib.degradation`: the stable public path (kept for notebooks and outside code) for
Sec. 3.3's degradation model;
the code is in csrip_lib.core.degradation."""
from .core.degradation import (  # noqa: F401
    CSRIPError,
    DEFAULT,
    DegradationConfig,
    HR_SIZE,
    LR_SIZE,
    RESIDUAL_SIGMAS,
    as_degradation,
    degrade,
    downsample2x,
    for_models,
    gaussian_blur,
    kernel_size,
    make_pyramid,
    residual,
    upsample_bicubic,
)
