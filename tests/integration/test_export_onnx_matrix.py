"""The export matrix: layers x quantizers x ONNX exporters, proved by onnxruntime.

Each case builds a small calibrated model (see ``_export_models``), exports it
with an example batch of 2, and runs onnxruntime on a *different* batch of 3
(the batch dimension is dynamic):

- graph optimizations disabled: the output equals the PyTorch eval-mode
  output to float rounding, below 1e-3 of the output quantization step;
- onnxruntime's default optimizations (integer kernels fused): within one
  output step.

``onnx-qop`` takes 8-bit layers only: for the other configurations the test
asserts that check refuses them, naming the layer.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from _export_models import CONFIGS, build, cases, output_step

import brevitas.export as bx

CASES = cases()


def _qop_accepts(config: str) -> bool:
    cfg = CONFIGS[config]
    return cfg.all_8_bit and not cfg.weight_zero_point


def _reference(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[np.ndarray, float]:
    with torch.no_grad():
        out = model(*inputs)
    return out.value.numpy(), output_step(out)


def _assert_matches(exporter: str, artifact: onnx.ModelProto, model: torch.nn.Module, inputs: tuple) -> None:
    ref, step = _reference(model, inputs)
    backend = bx.get_exporter(exporter)
    exact = backend.run(artifact, *inputs, optimize=False)[0]
    assert exact.shape == ref.shape
    err = np.abs(exact - ref).max() / step
    assert err < 1e-3, f"optimizations disabled: {err:.3g} steps off"
    fused = backend.run(artifact, *inputs, optimize=True)[0]
    err = np.abs(fused - ref).max() / step
    assert err <= 1 + 1e-3, f"default optimizations: {err:.3g} steps off"


@pytest.mark.parametrize(("layer", "config"), CASES, ids=[f"{layer}-{config}" for layer, config in CASES])
def test_onnx_qcdq_matches_pytorch(layer: str, config: str) -> None:
    model, example, other = build(layer, config)
    artifact = bx.export(model, example, exporter="onnx-qcdq")
    onnx.checker.check_model(artifact, full_check=True)
    assert artifact.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    _assert_matches("onnx-qcdq", artifact, model, other)


@pytest.mark.parametrize(("layer", "config"), CASES, ids=[f"{layer}-{config}" for layer, config in CASES])
def test_onnx_qop_matches_pytorch_or_refuses(layer: str, config: str) -> None:
    model, example, other = build(layer, config)
    if not _qop_accepts(config):
        problems = bx.check(model, example, exporter="onnx-qop")
        assert problems, "onnx-qop must refuse quantizers other than 8-bit"
        assert all(p.layer for p in problems) and all(p.fix for p in problems)
        with pytest.raises(bx.ExportCheckError):
            bx.export(model, example, exporter="onnx-qop")
        return
    artifact = bx.export(model, example, exporter="onnx-qop")
    onnx.checker.check_model(artifact, full_check=True)
    ops = {n.op_type for n in artifact.graph.node}
    if layer in ("conv1d", "conv2d", "conv3d", "linear"):
        assert ops & {"QLinearConv", "QLinearMatMul"}, ops
        assert "Conv" not in ops and "Gemm" not in ops
    _assert_matches("onnx-qop", artifact, model, other)


def test_matrix_covers_every_layer_and_configuration() -> None:
    from _export_models import LAYERS

    assert {layer for layer, _ in CASES} == set(LAYERS)
    assert {config for _, config in CASES} == set(CONFIGS)
    for layer in LAYERS:
        assert any(_qop_accepts(c) for lay, c in CASES if lay == layer)
        assert len({c for lay, c in CASES if lay == layer}) >= 4


class _Residual(torch.nn.Module):
    """A ResNet basic block between 8-bit quantizers, with float batch norms and a quantized sum."""

    def __init__(self) -> None:
        super().__init__()
        from brevitas.nn import QuantConv2d, QuantEltwiseAdd, QuantIdentity, QuantReLU
        from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat

        def conv(cin: int, cout: int, stride: int = 1) -> torch.nn.Module:
            return QuantConv2d(cin, cout, 3, stride=stride, padding=1, bias=False,
                               weight_quant=Int8WeightPerChannelFloat, output_quant=Int8ActPerTensorFloat)  # fmt: skip

        self.inp = QuantIdentity(return_quant_tensor=True)
        self.conv1, self.bn1, self.relu1 = conv(3, 8, 2), torch.nn.BatchNorm2d(8), QuantReLU(return_quant_tensor=True)
        self.conv2, self.bn2 = conv(8, 8), torch.nn.BatchNorm2d(8)
        self.down = torch.nn.Sequential(
            QuantConv2d(3, 8, 1, stride=2, bias=False, output_quant=Int8ActPerTensorFloat), torch.nn.BatchNorm2d(8)
        )
        self.add = QuantEltwiseAdd()
        self.relu2 = QuantReLU(return_quant_tensor=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(self.add(y, self.down(x)))


def _misc_layers() -> torch.nn.Module:
    from brevitas.nn import (
        BatchNorm2dToQuantScaleBias,
        QuantConv2d,
        QuantDropout,
        QuantIdentity,
        QuantScaleBias,
        QuantUpsample,
        TruncQuantAccumulator,
    )
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat

    io = dict(input_quant=Int8ActPerTensorFloat, output_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
    return torch.nn.Sequential(
        QuantIdentity(return_quant_tensor=True),
        QuantScaleBias(3, True, weight_quant=Int8WeightPerChannelFloat, weight_scaling_per_output_channel=True, **io),
        QuantUpsample(scale_factor=2),
        QuantDropout(),
        BatchNorm2dToQuantScaleBias(3, **io),
        QuantConv2d(3, 4, 1, bias=False, return_quant_tensor=True, input_quant=Int8ActPerTensorFloat),
        TruncQuantAccumulator(bit_width=6),
    )


@pytest.mark.parametrize("make", [_Residual, _misc_layers], ids=["residual-block", "scalebias-upsample-trunc"])
def test_networks_export_to_every_exporter(make: type) -> None:
    torch.manual_seed(0)
    model = make()
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(4, 3, 8, 8))
    model.eval()
    example, other = torch.randn(2, 3, 8, 8), torch.randn(3, 3, 8, 8)
    ref, step = _reference(model, (other,))
    _assert_matches("onnx-qcdq", bx.export(model, example, exporter="onnx-qcdq"), model, (other,))
    program = bx.export(model, example, exporter="torch-quantized")
    assert np.array_equal(bx.get_exporter("torch-quantized").run(program, other)[0], ref)
    if make is _Residual:
        artifact = bx.export(model, example, exporter="onnx-qop")
        assert [n.op_type for n in artifact.graph.node].count("QLinearConv") == 3
        _assert_matches("onnx-qop", artifact, model, (other,))
