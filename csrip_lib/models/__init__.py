"""Model zoo, one architecture per file: sr.py (CascadedSR, BaselineSR), recognizer.py (SqueezeNet)."""
from .recognizer import SqueezeNetRecognizer
from .sr import BaselineSR, CascadedSR, build_model

__all__ = ["CascadedSR", "BaselineSR", "SqueezeNetRecognizer", "build_model"]
