"""csrip_lib: C-SRIP face hallucination (Grm, Scheirer, Struc), a tested reimplementation.

Modules, bottom up: config, errors, argtypes, outputs, progress, degradation, synthetic, download, data, losses,
models (sr, recognizer, the Table 1 competitors, registry), checkpoint, train, metrics, inference,
train_recognizers, train_sr, competitors, judge, identity, evaluate, ablation, analysis, figures, widgets,
zoo, tour, hallucinate, notebook_runner, cli.
"""
__version__ = "0.1.0"
