"""csrip_lib: C-SRIP face hallucination (Grm, Scheirer, Struc), a tested reimplementation.

Modules, bottom up: config, errors, progress, degradation, synthetic, download, data, losses, models (sr,
recognizer), checkpoint, train, metrics, inference, train_recognizers, train_sr, identity, evaluate,
ablation, analysis, figures, widgets, tour, hallucinate, notebook_runner, cli.
"""
__version__ = "0.1.0"
