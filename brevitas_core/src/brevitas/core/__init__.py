"""Interfaces of the quantization building blocks, and the trivial blocks.

The standard algorithms live in the ``brevitas-plugins`` distribution and are
found by name through the registry (``brevitas.plugins``). Each module here
holds the abstract interface of one role plus the blocks too simple to be a
plugin's business (``ZeroZeroPoint``, ``BitWidthConst``, ``ConstScaling``).

Every block is a small ``torch.nn.Module`` whose ``forward`` takes and returns
tensors only (no ``.item()``, no Python-number state), so it compiles with
``torch.compile`` and keeps its state in ``state_dict``.
"""

__all__: list[str] = []
