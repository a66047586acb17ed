"""Graph-mode quantization: turn a float model into a quantized ``torch.fx.GraphModule``.

:func:`quantize` traces the model (:func:`brevitas.graph.tracer.trace`),
then rewrites the graph:

1. every ``BatchNorm`` right after a convolution or linear layer (its only
   user, each module called once) is folded into that layer
   (:func:`brevitas.nn.utils.merge_bn`) and removed, unless
   ``QuantConfig(merge_bn=False)``;
2. each *site* is replaced by its quant layer, configured by
   :meth:`QuantConfig.resolve <brevitas.graph.config.QuantConfig.resolve>`:

   ==============================================  ===========================  ===========
   float                                           quant layer                  kind
   ==============================================  ===========================  ===========
   ``nn.Conv1d/2d/3d``                             ``QuantConv1d/2d/3d``        ``conv``
   ``nn.ConvTranspose1d/2d/3d``                    ``QuantConvTranspose1d/..``  ``conv_transpose``
   ``nn.Linear``                                   ``QuantLinear``              ``linear``
   ``nn.ReLU``, ``F.relu``, ``torch.relu``,        ``QuantReLU``                ``relu``
   ``x.relu()``
   ``nn.Sigmoid``, ``torch.sigmoid``, ...          ``QuantSigmoid``             ``sigmoid``
   ``nn.Tanh``, ``torch.tanh``, ...                ``QuantTanh``                ``tanh``
   ``nn.Hardtanh``, ``nn.ReLU6``, ``F.hardtanh``,  ``QuantHardTanh``            ``hardtanh``
   ``F.relu6``
   ``x + y``, ``torch.add``, ``x.add(y)``          ``QuantEltwiseAdd``          ``add``
   ``torch.cat``                                   ``QuantCat``                 ``cat``
   a model input                                   ``QuantIdentity`` after it   ``input``
   ==============================================  ===========================  ===========

   An addition or concatenation quantizes all its operands with one shared
   quantizer, so in inference mode they have one scale and the result is on
   a grid. A module called at several places gets one quant layer per call
   (activations) or keeps one shared layer (weights: shared weights stay
   shared). Functions become modules named after the operation inside the
   module whose ``forward`` calls them (``layer1.0.add``), so rules can
   match them by name;
3. activation quantizers (activations, additions, concatenations, inputs)
   return QuantTensors when every consumer accepts one (quant layers, or
   max pooling / flatten / reshape / dropout leading to quant layers), else
   plain tensors. A convolution or linear layer whose input arrives as such a
   QuantTensor quantizes nothing more on its input (its bias uses the input
   scale); any other one gets an input quantizer (``act_quant``).

Everything else (pooling, flatten, user functions, ``torch.nn`` layers with no
quant counterpart, the configured leaf modules) stays as it is, in float. The
float model is not modified (it is deep-copied first, unless ``inplace``).

Example:
    >>> import torch
    >>> class Block(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    ...         self.bn = torch.nn.BatchNorm2d(4)
    ...     def forward(self, x):
    ...         return torch.relu(self.bn(self.conv(x)) + x)
    >>> qmodel = quantize(Block().eval())
    >>> sorted(type(m).__name__ for n, m in qmodel.named_children())
    ['QuantConv2d', 'QuantEltwiseAdd', 'QuantIdentity', 'QuantReLU']
    >>> qmodel(torch.randn(1, 4, 8, 8)).shape
    torch.Size([1, 4, 8, 8])
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.fx
from torch import nn

from brevitas.errors import ConfigError
from brevitas.graph.config import QuantConfig, Site
from brevitas.graph.sites import (
    WEIGHT_KINDS,
    GraphFacts,
    SiteNode,
    assign_names,
    decide_quant_tensor_flow,
    find_sites,
    is_node,
    module_of,
    site_nonneg,
)
from brevitas.graph.tracer import trace

__all__ = ["quantize"]

# --------------------------------------------------------------------------- BatchNorm folding

_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _call_counts(gm: torch.fx.GraphModule) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            counts[str(node.target)] = counts.get(str(node.target), 0) + 1
    return counts


def _merge_batch_norms(gm: torch.fx.GraphModule) -> list[str]:
    """Fold each BatchNorm that directly follows a conv / linear layer; returns the folded BN names."""
    from brevitas.nn.utils import merge_bn

    counts = _call_counts(gm)
    merged = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        bn = module_of(gm, node)
        if type(bn) not in _BN_TYPES or counts.get(str(node.target), 0) != 1:
            continue
        prev = node.args[0] if node.args else None
        if not is_node(prev) or prev.op != "call_module" or len(prev.users) != 1:
            continue
        layer = module_of(gm, prev)
        if type(layer) not in WEIGHT_KINDS or counts.get(str(prev.target), 0) != 1:
            continue
        if bn.running_mean is None or bn.running_var is None:
            continue  # no running statistics: nothing to fold, kept in float
        merge_bn(layer, bn)
        node.replace_all_uses_with(prev)
        gm.graph.erase_node(node)
        merged.append(str(node.target))
    return merged


# --------------------------------------------------------------------------- building layers


def _weight_layer(info: SiteNode, kwargs: dict[str, Any]) -> nn.Module:
    from brevitas import nn as qnn

    float_layer = info.module
    assert float_layer is not None
    cls = type(float_layer)
    weight = float_layer.weight
    common = {"device": weight.device, "dtype": weight.dtype, "bias": float_layer.bias is not None}
    if cls is nn.Linear:
        layer: nn.Module = qnn.QuantLinear(float_layer.in_features, float_layer.out_features, **common, **kwargs)
    elif cls in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
        qcls = {nn.Conv1d: qnn.QuantConv1d, nn.Conv2d: qnn.QuantConv2d, nn.Conv3d: qnn.QuantConv3d}[cls]
        layer = qcls(
            float_layer.in_channels,
            float_layer.out_channels,
            float_layer.kernel_size,
            stride=float_layer.stride,
            padding=float_layer.padding,
            dilation=float_layer.dilation,
            groups=float_layer.groups,
            padding_mode=float_layer.padding_mode,
            **common,
            **kwargs,
        )
    else:
        qcls = {
            nn.ConvTranspose1d: qnn.QuantConvTranspose1d,
            nn.ConvTranspose2d: qnn.QuantConvTranspose2d,
            nn.ConvTranspose3d: qnn.QuantConvTranspose3d,
        }[cls]
        layer = qcls(
            float_layer.in_channels,
            float_layer.out_channels,
            float_layer.kernel_size,
            stride=float_layer.stride,
            padding=float_layer.padding,
            output_padding=float_layer.output_padding,
            groups=float_layer.groups,
            dilation=float_layer.dilation,
            padding_mode=float_layer.padding_mode,
            **common,
            **kwargs,
        )
    # loading re-derives the statistics-based weight scales from the float weights
    result = layer.load_state_dict(float_layer.state_dict(), strict=False)
    if result.unexpected_keys:  # pragma: no cover - a float layer has only weight and bias
        raise ConfigError(f"quantize: cannot copy {cls.__name__} state into {type(layer).__name__}: {result}")
    for name in ("weight", "bias"):  # frozen parameters stay frozen
        source, target = getattr(float_layer, name, None), getattr(layer, name, None)
        if isinstance(source, nn.Parameter) and isinstance(target, nn.Parameter):
            target.requires_grad_(source.requires_grad)
    return layer


def _act_layer(info: SiteNode, kwargs: dict[str, Any]) -> nn.Module:
    from brevitas import nn as qnn

    if info.kind == "relu":
        return qnn.QuantReLU(**kwargs)
    if info.kind == "sigmoid":
        return qnn.QuantSigmoid(**kwargs)
    if info.kind == "tanh":
        return qnn.QuantTanh(**kwargs)
    # hardtanh: bounds from the module or the call
    if info.module is not None:
        min_val, max_val = float(info.module.min_val), float(info.module.max_val)
    elif info.float_type is nn.ReLU6:
        min_val, max_val = 0.0, 6.0
    else:
        node = info.node
        min_val = float(node.args[1] if len(node.args) > 1 else node.kwargs.get("min_val", -1.0))
        max_val = float(node.args[2] if len(node.args) > 2 else node.kwargs.get("max_val", 1.0))
    return qnn.QuantHardTanh(min_val=min_val, max_val=max_val, **kwargs)


def _build(info: SiteNode) -> nn.Module:
    from brevitas import nn as qnn

    resolved = info.resolved
    assert resolved is not None
    kwargs = resolved.layer_kwargs()
    rqt = info.returns_quant_tensor
    if info.kind in ("conv", "conv_transpose", "linear"):
        return _weight_layer(info, kwargs)
    if info.kind == "add":
        return qnn.QuantEltwiseAdd(return_quant_tensor=rqt, **kwargs)
    if info.kind == "cat":
        return qnn.QuantCat(return_quant_tensor=rqt, **kwargs)
    if info.kind == "input":
        return qnn.QuantIdentity(return_quant_tensor=rqt, **kwargs)
    return _act_layer(info, {**kwargs, "return_quant_tensor": rqt})


def _set_submodule(root: nn.Module, qualname: str, module: nn.Module) -> None:
    """Register ``module`` at ``qualname``, creating empty parent modules that do not exist yet."""
    parent: nn.Module = root
    *parents, attr = qualname.split(".")
    for name in parents:
        child = getattr(parent, name, None)
        if not isinstance(child, nn.Module):
            child = nn.Module()
            parent.add_module(name, child)
        parent = child
    setattr(parent, attr, module)


def _model_device(model: nn.Module) -> torch.device | None:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


# --------------------------------------------------------------------------- the pass


def quantize(model: nn.Module, config: QuantConfig | None = None, *, inplace: bool = False) -> torch.fx.GraphModule:
    """Quantize a float model: trace it, fold batch norms, replace layers and operations by quant layers.

    Args:
        model: the float model (trained; its batch norms' running statistics
            are folded). Parts already quantized (``brevitas.nn`` layers)
            are kept as they are.
        config: quantizers per kind of site and rules by name pattern
            (default :class:`~brevitas.graph.config.QuantConfig()`: 8-bit
            weights, 32-bit biases, 8-bit activations).
        inplace: work on ``model`` itself instead of a deep copy: its float
            layers are replaced by the quant layers (shared with the result)
            and its folded batch norms by ``nn.Identity``. Use the returned
            module: ``model``'s own ``forward`` does not run the added
            operations (input, addition, function quantizers).

    Returns:
        A ``torch.fx.GraphModule`` in the training mode of ``model``, with the
        quant layers at the qualified names of the layers they replace.
        Statistics-based activation quantizers start uncalibrated: run
        :func:`brevitas.graph.calibrate.calibration_mode` (post-training
        quantization) or train (QAT).

    Raises:
        UntraceableModelError: the model cannot be traced (names the module
            and the construct; mark it with ``QuantConfig(leaf_modules=...)``).
        ConfigError: a bias quantizer that needs the input scale on a layer
            whose input ends up unquantized (a rule set ``input_quant=None``).

    Example:
        >>> import torch
        >>> from brevitas.graph.config import Rule
        >>> mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        >>> cfg = QuantConfig(weight_bit_width=4, rules=[Rule(name=["0", "2"], weight_bit_width=8)])
        >>> q = quantize(mlp, cfg)
        >>> [int(q.get_submodule(n).quant_weight_bit_width()) for n in ("0", "2")]
        [8, 8]
    """
    config = QuantConfig() if config is None else config
    if not isinstance(config, QuantConfig):
        raise ConfigError(f"quantize: config must be a brevitas.graph.QuantConfig, got {type(config).__name__}")
    root = model if inplace else copy.deepcopy(model)
    training = root.training
    gm = trace(root, config.leaf_modules)
    merged = _merge_batch_norms(gm) if config.merge_bn else []
    if inplace:  # the model's own forward must not apply a folded batch norm a second time
        for name in merged:
            _set_submodule(root, name, nn.Identity())
    facts = GraphFacts(gm)

    sites = find_sites(gm, facts)
    if _functionalize_inplace(gm, sites):
        facts = GraphFacts(gm)
    assign_names(gm, sites)
    by_node: dict[torch.fx.Node, SiteNode] = {}
    for info in sites:
        info.resolved = config.resolve(Site(info.name, info.kind, info.float_type, site_nonneg(info, facts)))
        if info.resolved.quantize:
            by_node[info.node] = info
    decide_quant_tensor_flow(gm, by_node)

    device = _model_device(root)
    built: dict[str, nn.Module] = {}
    for info in by_node.values():
        module = built.get(info.name)
        if module is None:
            module = _build(info)
            # where the float module's tensors are; a module without any (ReLU, an added input quantizer)
            # goes where the model is: its quantizers were built on the CPU
            target = _model_device(info.module) if info.module is not None else None
            target = target if target is not None else device
            if target is not None:
                module = module.to(target)
            module.train(training)
            built[info.name] = module
            _set_submodule(gm, info.name, module)
            if inplace and info.module is not None and info.name == str(info.node.target):
                _set_submodule(root, info.name, module)
        _rewrite_node(gm, info)

    gm.graph.lint()
    # a new GraphModule holds exactly the modules the graph calls, registered in the order they are first used
    gm = torch.fx.GraphModule(gm, gm.graph, type(model).__name__)
    gm.train(training)
    from brevitas.nn.utils import name_quant_layers

    name_quant_layers(gm)
    return gm


def _functionalize_inplace(gm: torch.fx.GraphModule, sites: list[SiteNode]) -> bool:
    """Make in-place sites functional: what runs after ``x.relu_()`` reads its result, not ``x``.

    The quant layers that replace them are not in place, so the nodes after
    an in-place site that use its input are rewired to the site's output
    (which aliases the input in the float model, so nothing changes there).
    Returns whether anything was rewired.
    """
    changed = False
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    for info in sites:
        node = info.node
        if not info.inplace or not node.args or not is_node(node.args[0]):
            continue
        source = node.args[0]
        for user in list(source.users):
            if user is not node and order[user] > order[node]:
                user.replace_input_with(source, node)
                changed = True
    return changed


def _rewrite_node(gm: torch.fx.GraphModule, info: SiteNode) -> None:
    node = info.node
    graph = gm.graph
    if info.kind == "input":
        with graph.inserting_after(node):
            new = graph.call_module(info.name, (node,))
        node.replace_all_uses_with(new, delete_user_cb=lambda user: user is not new)
        return
    if info.kind in ("conv", "conv_transpose", "linear"):
        node.target = info.name
        return
    if info.kind == "add":
        args: tuple[Any, ...] = (node.args[0], node.args[1])
        kwargs: dict[str, Any] = {}
    elif info.kind == "cat":
        tensors = node.args[0] if node.args else node.kwargs["tensors"]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        args, kwargs = (list(tensors),), {"dim": dim}
    else:  # activations: the input only (inplace flags and bounds are the layer's business)
        args, kwargs = (node.args[0],), {}
    with graph.inserting_after(node):
        new = graph.call_module(info.name, args, kwargs)
    new.meta = dict(node.meta)
    node.replace_all_uses_with(new)
    graph.erase_node(node)
