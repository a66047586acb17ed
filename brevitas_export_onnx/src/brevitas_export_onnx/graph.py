"""A small builder of ONNX graphs: unique names, constants as initializers, opset bookkeeping.

Translators call :meth:`GraphBuilder.node` and :meth:`GraphBuilder.const`;
:meth:`GraphBuilder.build` returns a checked ``onnx.ModelProto`` with the
lowest IR version the imported opsets need (so older runtimes load it).

Example:
    >>> import numpy as np
    >>> g = GraphBuilder(opset=13)
    >>> x = g.input("x", np.float32, ["batch", 4])
    >>> y = g.node("Relu", [x], "act")
    >>> _ = g.output(y, np.float32, ["batch", 4])
    >>> model = g.build()
    >>> [n.op_type for n in model.graph.node], model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    (['Relu'], 'batch')
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["BATCH", "GraphBuilder", "onnx_dtype"]

#: name of the symbolic batch dimension of inputs and outputs
BATCH = "batch"

_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int16): TensorProto.INT16,
    np.dtype(np.uint16): TensorProto.UINT16,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def onnx_dtype(dtype: Any) -> int:
    """The ``TensorProto`` element type of a numpy dtype (``"int4"`` / ``"uint4"`` accepted).

    Example:
        >>> onnx_dtype(np.int8) == TensorProto.INT8, onnx_dtype("int4") == TensorProto.INT4
        (True, True)
    """
    if isinstance(dtype, str) and dtype in ("int4", "uint4"):
        return TensorProto.INT4 if dtype == "int4" else TensorProto.UINT4
    return _NP_TO_ONNX[np.dtype(dtype)]


def _sanitize(hint: str) -> str:
    text = re.sub(r"[^0-9A-Za-z_./:-]", "_", hint).strip("_")
    return text or "t"


class GraphBuilder:
    """Accumulates nodes, initializers, inputs and outputs of one ONNX graph.

    Args:
        opset: version of the default ONNX domain.
        name: graph name.
        domains: extra operator domains and their versions (``{"qonnx.custom_op.general": 1}``).
    """

    def __init__(self, opset: int = 17, name: str = "brevitas", domains: dict[str, int] | None = None) -> None:
        self.opset = int(opset)
        self.name = name
        self.domains: dict[str, int] = dict(domains or {})
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.value_infos: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._const_cache: dict[tuple[Any, ...], str] = {}
        self._initializer_arrays: dict[str, np.ndarray] = {}
        self.producers: dict[str, onnx.NodeProto] = {}

    # -- names -------------------------------------------------------------
    def unique(self, hint: str) -> str:
        """A tensor name not used yet, derived from ``hint``."""
        base = _sanitize(hint)
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def _unique_node_name(self, hint: str) -> str:
        base = _sanitize(hint)
        name, i = base, 0
        while name in self._node_names:
            i += 1
            name = f"{base}_{i}"
        self._node_names.add(name)
        return name

    def use_domain(self, domain: str, version: int) -> None:
        """Declare an operator domain (a second, different version is an error)."""
        old = self.domains.get(domain)
        if old is not None and old != version:
            raise ValueError(f"domain {domain!r} already declared with version {old}, not {version}")
        self.domains[domain] = version

    # -- graph ends --------------------------------------------------------
    def input(self, hint: str, dtype: Any, shape: Sequence[int | str | None]) -> str:
        """Add a graph input; ``shape`` may hold :data:`BATCH` (or any string) for symbolic dimensions."""
        name = self.unique(hint)
        self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
        return name

    def output(self, name: str, dtype: Any, shape: Sequence[int | str | None], rename: str | None = None) -> str:
        """Declare ``name`` a graph output (through an ``Identity`` when it is an input or already an output)."""
        taken = {v.name for v in self.inputs} | {v.name for v in self.outputs} | set(self._initializer_arrays)
        if name in taken:
            name = self.node("Identity", [name], rename or f"{name}_out")
        elif rename is not None and rename not in self._names:
            self.rename(name, rename)
            name = rename
        self.outputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))
        return name

    def rename(self, old: str, new: str) -> None:
        """Rename tensor ``old`` to ``new`` wherever nodes produce or consume it."""
        self._names.add(new)
        for node in self.nodes:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = new
            for i, name in enumerate(node.output):
                if name == old:
                    node.output[i] = new
        if old in self.producers:
            self.producers[new] = self.producers.pop(old)

    # -- constants ----------------------------------------------------------
    def const(self, array: Any, hint: str = "const", dtype: Any = None, share: bool = True) -> str:
        """An initializer holding ``array`` (identical small constants are shared).

        Args:
            array: numpy array, tensor, or Python number / list.
            hint: name hint.
            dtype: numpy dtype (or ``"int4"`` / ``"uint4"``) to store.
            share: reuse an identical initializer made earlier.
        """
        if hasattr(array, "detach"):
            array = array.detach().cpu().numpy()
        sub4 = isinstance(dtype, str) and dtype in ("int4", "uint4")
        arr = np.asarray(array, dtype=None if (dtype is None or sub4) else dtype)
        if sub4:
            arr = np.asarray(arr, dtype=np.int8 if dtype == "int4" else np.uint8)
        key = None
        if share and arr.size <= 64:
            key = (str(dtype) if sub4 else arr.dtype.str, arr.shape, arr.tobytes())
            hit = self._const_cache.get(key)
            if hit is not None:
                return hit
        name = self.unique(hint)
        if sub4:
            tensor = helper.make_tensor(name, onnx_dtype(dtype), arr.shape, arr.flatten().tolist())
        else:
            tensor = numpy_helper.from_array(arr if arr.flags.c_contiguous else np.ascontiguousarray(arr), name)
        self.initializers.append(tensor)
        self._initializer_arrays[name] = arr
        if key is not None:
            self._const_cache[key] = name
        return name

    def const_value(self, name: str) -> np.ndarray | None:
        """The array of initializer ``name`` (``None`` when it is not an initializer)."""
        return self._initializer_arrays.get(name)

    # -- nodes ---------------------------------------------------------------
    def node(
        self,
        op_type: str,
        inputs: Sequence[str],
        hint: str,
        outputs: int = 1,
        domain: str = "",
        output_names: Sequence[str] | None = None,
        **attrs: Any,
    ) -> Any:
        """Add a node; returns its output name (or the list of names when ``outputs > 1``).

        ``inputs`` may contain ``""`` for an omitted optional input. Attributes
        whose value is ``None`` are left out.
        """
        node_name = self._unique_node_name(f"{hint}/{op_type}" if hint else op_type)
        if output_names is None:
            base = f"{hint}/{op_type}" if hint else op_type
            output_names = [self.unique(base if outputs == 1 else f"{base}_{i}") for i in range(outputs)]
        else:
            output_names = list(output_names)
            self._names.update(output_names)
        attrs = {k: v for k, v in attrs.items() if v is not None}
        node = helper.make_node(op_type, list(inputs), list(output_names), name=node_name, domain=domain, **attrs)
        self.nodes.append(node)
        for o in output_names:
            self.producers[o] = node
        return output_names[0] if outputs == 1 else list(output_names)

    def value_info(self, name: str, dtype: Any, shape: Sequence[int | str | None]) -> None:
        """Annotate an intermediate tensor with its type and shape."""
        self.value_infos.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape)))

    def live_nodes(self) -> list[onnx.NodeProto]:
        """The nodes the graph outputs depend on, in order (dead ones are left out)."""
        needed = {v.name for v in self.outputs}
        live = []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                live.append(node)
                needed.update(i for i in node.input if i)
        return list(reversed(live))

    # -- result ----------------------------------------------------------------
    def opset_imports(self) -> list[onnx.OperatorSetIdProto]:
        """The opset imports: the default domain plus every declared one."""
        out = [helper.make_opsetid("", self.opset)]
        out += [helper.make_opsetid(d, v) for d, v in sorted(self.domains.items())]
        return out

    def build(self, producer: str = "brevitas", check: bool = True, full_check: bool = True) -> onnx.ModelProto:
        """The model (nodes and initializers no output depends on are left out); checked when ``check``."""
        nodes = self.live_nodes()
        used = {name for node in nodes for name in node.input} | {v.name for v in self.outputs}
        graph = helper.make_graph(
            nodes,
            self.name,
            self.inputs,
            self.outputs,
            initializer=[t for t in self.initializers if t.name in used],
            value_info=self.value_infos,
        )
        imports = self.opset_imports()
        model = helper.make_model(graph, opset_imports=imports, producer_name=producer)
        model.ir_version = _min_ir_version(self.opset)
        if check:
            onnx.checker.check_model(model, full_check=full_check)
        return model


def _min_ir_version(opset: int) -> int:
    """The lowest IR version that supports ``opset`` of the default domain."""
    try:
        return int(helper.find_min_ir_version_for([helper.make_opsetid("", opset)], ignore_unknown=True))
    except Exception:  # pragma: no cover - very old onnx
        return onnx.IR_VERSION
