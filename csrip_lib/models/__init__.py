"""Model zoo, one architecture per file: sr.py (CascadedSR, BaselineSR), recognizer.py (SqueezeNet), the
Table 1 competitors srcnn.py, vdsr.py, srgan.py, urdgn.py, nbsrf.py (NBSRF-like) and lp.py (a perceptual
loss on an SRResNet), and registry.py, which maps a model name to its class and config and loads any SR
checkpoint."""
from .recognizer import SqueezeNetRecognizer
from .registry import COMPETITORS, MODEL_NAMES, build_sr, load_sr
from .sr import BaselineSR, CascadedSR, build_model

__all__ = ["CascadedSR", "BaselineSR", "SqueezeNetRecognizer", "build_model", "build_sr", "load_sr",
           "COMPETITORS", "MODEL_NAMES"]
