"""The standard building blocks, one module per role.

Each module subclasses the interfaces of ``brevitas.core`` and exposes
``register(registry)``, which the plugin's entry point
(``brevitas_plugins._plugin``) calls to add the module's names to the
registry. Import the blocks from their module, e.g.
``from brevitas_plugins.core.quant import RescalingIntQuant``.

- ``float_to_int``: rounding with straight-through gradients (kind
  ``float_to_int``) and the ``TensorClamp`` / ``TensorClampSte`` clamps;
- ``bit_width``: learned bit-width, bit-width offsets, ``IntScaling`` (kind
  ``bit_width``);
- ``quant``: integer, binary, ternary and truncating quantizers (kind
  ``tensor_quant``);
- the scaling, statistics, restriction and zero-point modules.
"""

__all__: list[str] = []
