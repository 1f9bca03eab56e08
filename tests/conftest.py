"""Shared pytest fixtures. Real LFW faces when $CSRIP_DATA is set (CI), synthetic faces otherwise."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def hr_faces() -> torch.Tensor:
    """Six HR faces, 6 x 3 x 192 x 192 float64 in [0, 1]: LFW images of six identities spread over
    $CSRIP_DATA (csrip_lib.data.load_hr), else six rendered synthetic faces (three identities)."""
    from csrip_lib.data import hr_crop, load_hr

    root = os.environ.get("CSRIP_DATA")
    if root:
        files = sorted(p for p in Path(root).glob("*/*") if p.suffix.lower() in {".jpg", ".png"})
        assert files, f"CSRIP_DATA={root} holds no <identity>/<image> files"
        images = [load_hr(p) for p in files[:: max(1, len(files) // 6)][:6]]
    else:
        from csrip_lib.synthetic import render_faces
        images = [hr_crop(torch.from_numpy(im).permute(2, 0, 1)) for *_, im in render_faces(3, 2, progress=False)]
    return torch.stack(images).double() / 255
