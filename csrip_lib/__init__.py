"""csrip_lib: C-SRIP face hallucination (Grm, Scheirer, Struc), a tested reimplementation.

Modules, bottom up: config, degradation, data, losses, models, checkpoint, train, metrics,
train_recognizers, train_sr, evaluate, figures, widgets, cli.
"""
__version__ = "0.1.0"
