"""What the notebooks drive: the tour's PRESET boundary, sliders, the paper's figures, `csrip demo`."""
