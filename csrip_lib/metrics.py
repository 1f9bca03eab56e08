"""`csrip_lib.metrics`: the stable public path (kept for notebooks and outside code) for
the evaluation conventions (PSNR / SSIM per image);
the code is in csrip_lib.evaluation.metrics."""
from .evaluation.metrics import (  # noqa: F401
    BT601_OFFSET,
    BT601_WEIGHTS,
    RANGE_TOLERANCE,
    SSIM_CHUNK,
    prepare,
    psnr,
    psnr_ssim,
    rgb_to_y,
    ssim,
    ssim_eval,
)
