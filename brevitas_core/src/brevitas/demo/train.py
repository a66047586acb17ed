"""Training and evaluation loops of the demo (plain PyTorch, tqdm progress bars).

Example:
    >>> import torch
    >>> from brevitas.demo.data import load_digits_split
    >>> from brevitas.demo.models import FloatLeNet
    >>> from brevitas.demo.train import train, accuracy
    >>> split = load_digits_split()
    >>> model = FloatLeNet()
    >>> _ = train(model, split.x_train[:256], split.y_train[:256], epochs=1, progress=False)
    >>> 0.0 <= accuracy(model, split.x_test, split.y_test) <= 100.0
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["accuracy", "predict", "train"]


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
    desc: str = "train",
) -> list[float]:
    """Adam with cosine decay, cross-entropy; returns the mean loss of each epoch."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (len(y) + batch_size - 1) // batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * steps_per_epoch))
    losses = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * steps_per_epoch, desc=desc, unit="step", leave=False)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        losses.append(total / len(y))
    if bar is not None:
        bar.close()
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 256) -> Tensor:
    """Logits of ``model`` in eval mode (plain tensor)."""
    from brevitas.quant_tensor import to_tensor

    model.eval()
    return torch.cat([to_tensor(model(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Top-1 accuracy in percent."""
    return float((predict(model, x).argmax(1) == y).float().mean() * 100)
