"""Phase-2 methods on the cached features: the study's retraining and the long-tail literature's classifier-only
methods, each fitted in seconds on the frozen backbone's features, and compared.

    contract   HeadInputs -> HeadFit: what every method takes and returns (a folded nn.Linear, its choice, seconds)
    gradient   retrain (the study's phase 2), crt, balanced-softmax: the fused loop of train.head_training
    lws        learnable weight scaling: its own small fused loop, driven by the same epochs
    posthoc    tau-norm and logit-adjust: the phase-1 layer transformed, one parameter swept on val
    ncm        nearest class mean (cosine) on L2-normalized features
    registry   method name -> fit function: the one table `train --phase2` and `heads` both use
    summary    SummaryRow (typed), summary.csv / summary.md / the printed table
    runner     `fit_heads(RUN, methods)`: caches once, fits, writes RUN/heads/

This package imports nothing here, so `train.head_config` (read by --help) can import its names cheaply.
"""
