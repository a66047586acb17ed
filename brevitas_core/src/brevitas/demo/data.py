"""The demo's data: scikit-learn's handwritten digits, nothing downloaded.

1,797 grey-scale 8x8 images of the digits 0-9 ship inside scikit-learn
(``sklearn.datasets.load_digits``). Pixels (0..16) are scaled to [0, 1].

Example:
    >>> from brevitas.demo.data import load_digits_split
    >>> split = load_digits_split(seed=0)
    >>> tuple(split.x_train.shape[1:]), split.x_train.shape[0] + split.x_test.shape[0]
    ((1, 8, 8), 1797)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from brevitas.errors import BrevitasError

__all__ = ["DigitsSplit", "load_digits_split"]


@dataclass
class DigitsSplit:
    """Train and test tensors: images ``(N, 1, 8, 8)`` float32, labels ``(N,)`` int64."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_split(seed: int = 0, test_fraction: float = 0.2) -> DigitsSplit:
    """The digits set, shuffled with ``seed`` and split ``1 - test_fraction`` / ``test_fraction``.

    Raises:
        BrevitasError: scikit-learn is not installed (``pip install scikit-learn``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - exercised only without sklearn
        raise BrevitasError(
            "the demo needs scikit-learn for its data set: pip install scikit-learn "
            "(or pip install -r requirements.txt)"
        ) from exc
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    n_test = int(round(len(y) * test_fraction))
    return DigitsSplit(x[n_test:], y[n_test:], x[:n_test], y[:n_test])
