"""NCM, nearest class mean (Kang et al. 2020), with cosine similarity: every training feature is L2-normalized,
each class's mean m_c of those is taken, and a row x goes to argmax_c cos(x, m_c).

As a linear layer: cos(x, m_c) = <x, m_c / |m_c|> / |x|, and 1 / |x| scales every class's score alike, so the
decision is exactly argmax_c <x, m_c / |m_c|>: weight rows m_c / |m_c|, bias 0 (a class without training rows
gets bias -1e30 and is never predicted). That equals scikit-learn's NearestCentroid on normalized features with
the centroids normalized too (tested). Nothing is tuned; the means take one pass over the training features.
"""

from __future__ import annotations

import torch

from camtrap_fast.train.heads.contract import BLOCK_ROWS, MIN_NORM, HeadFit, HeadInputs

NEVER = -1e30  # bias of a class with no training rows


def normalized_class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per class, the mean of its L2-normalized rows (fp32, C x D; zero for a class with no rows)."""
    sums = torch.zeros(num_classes, features.shape[1])
    for rows, targets in zip(features.split(BLOCK_ROWS), labels.split(BLOCK_ROWS)):
        rows = rows.float()
        rows = rows.div_(torch.linalg.vector_norm(rows, dim=1, keepdim=True).clamp_min_(MIN_NORM))
        sums.index_add_(0, targets, rows)
    counts = torch.bincount(labels, minlength=num_classes)
    return sums / counts.clamp_min(1)[:, None]


def fit_ncm(inputs: HeadInputs) -> HeadFit:
    means = normalized_class_means(inputs.train_features, inputs.train_labels, inputs.num_classes)
    weight = means / torch.linalg.vector_norm(means, dim=1, keepdim=True).clamp_min(MIN_NORM)
    bias = torch.where(inputs.train_counts() > 0, 0.0, NEVER).to(torch.float32)
    return HeadFit("ncm", weight, bias, details={"similarity": "cosine to the mean of L2-normalized features"})
