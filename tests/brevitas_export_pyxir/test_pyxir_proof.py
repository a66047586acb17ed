"""The proof: exported graphs, run by the contract executor, give the PyTorch eval-mode output to one output step.

With the DPU's rounding (``float_to_int_impl_type='dpu'``) in the quantizers
the two agree exactly; with round-half-to-even they differ only where a value
falls exactly between two codes, by one step. The shipped executor
(``PyXIRExporter.run``) and the test-side one agree exactly on every file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyxir_nets import DpuInt8Act, ResidualNet, calibrate, conv_kwargs, export_and_execute, small_cnn

import brevitas.export as bx
from brevitas.nn import QuantAvgPool2d, QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPointMaxInit

CASES = {
    "cnn-maxpool": (lambda r: small_cnn(r), (3, 4, 8, 8)),
    "cnn-avgpool": (lambda r: small_cnn(r, pool="avg"), (3, 4, 8, 8)),
    "cnn-strided-dilated-grouped": (lambda r: small_cnn(r, stride=2, padding=2, dilation=2, groups=2), (3, 4, 8, 8)),
    "cnn-unpadded-no-bias": (lambda r: small_cnn(r, padding=0, bias=False), (3, 4, 10, 10)),
    "residual-add": (lambda r: ResidualNet(r), (3, 3, 4, 4)),
}


@pytest.mark.parametrize("exporter", ["pyxir", "pyxir-dpuv2"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_contract_output_equals_pytorch_with_dpu_rounding(case, exporter):
    torch.manual_seed(0)
    build, shape = CASES[case]
    model = calibrate(build(True), shape)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    artifact, got, ref, step = export_and_execute(model, x, exporter)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= step
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(bx.get_exporter(exporter).run(artifact, x)[0], got)


def _single_layer_models() -> dict[str, tuple[torch.nn.Module, str, tuple[int, ...], bool]]:
    """One DPU layer behind an input quantizer, rounding half to even; the quantizer producing the output."""

    def inp() -> QuantIdentity:
        return QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)

    half_even = conv_kwargs(dpu_rounding=False)
    return {
        "conv": (torch.nn.Sequential(inp(), QuantConv2d(3, 4, 3, padding=1, **half_even)), "1.output_quant",
                 (4, 3, 6, 6), True),
        "linear": (torch.nn.Sequential(inp(), QuantLinear(12, 6, **half_even)), "1.output_quant", (16, 12), True),
        # a coarser output grid than the input's (scale 2**-2 from max_val=64): every odd input code is a tie
        "relu": (torch.nn.Sequential(inp(), QuantReLU(act_quant=Uint8ActPerTensorFixedPointMaxInit, max_val=64.0)),
                 "1.act_quant", (8, 64), False),
        "avgpool": (torch.nn.Sequential(inp(), QuantAvgPool2d(2, float_to_int_impl_type="round")), "1.trunc_quant",
                    (4, 3, 6, 6), True),
    }  # fmt: skip


@pytest.mark.parametrize("case", ["conv", "linear", "relu", "avgpool"])
def test_half_even_quantizers_differ_from_the_dpu_only_at_ties_by_one_step(case):
    """Round-half-to-even and the DPU's half-up agree except on exact ties: one step there, nowhere else."""
    torch.manual_seed(0)
    model, proxy_name, shape, signed = _single_layer_models()[case]
    model = calibrate(model, shape)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 2
    seen = []
    hook = model.get_submodule(proxy_name).register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    artifact, got, ref, step = export_and_execute(model, x)
    hook.remove()
    pre = getattr(seen[-1], "value", seen[-1]).detach().double().numpy()
    scaled = pre / step
    ties = scaled - np.floor(scaled) == 0.5
    lo, hi = (-128, 127) if signed else (0, 255)
    half_even, half_up = np.clip(np.round(scaled), lo, hi), np.clip(np.floor(scaled + 0.5), lo, hi)
    differ = got != ref
    assert np.abs(got - ref).max() <= step
    assert not (differ & ~ties).any()
    np.testing.assert_array_equal(differ, half_even != half_up)


def test_a_quantizer_after_a_layer_becomes_its_output_quantization():
    """QuantConv2d without output_quant followed by QuantIdentity: the Conv node's vai_quant_out is the identity's."""
    model = torch.nn.Sequential(
        QuantIdentity(act_quant=DpuInt8Act),
        QuantConv2d(2, 3, 3, **conv_kwargs(output_quant=None, return_quant_tensor=False)),
        QuantIdentity(act_quant=DpuInt8Act),
    )
    model = calibrate(model, (2, 2, 5, 5))
    x = torch.randn(2, 2, 5, 5)
    artifact, got, ref, _ = export_and_execute(model, x)
    assert [n.op_type for n in artifact.graph.node] == ["Conv"]
    np.testing.assert_array_equal(got, ref)


def test_plain_torch_relu_and_max_pool_and_view_between_dpu_layers():
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = QuantIdentity(act_quant=DpuInt8Act, return_quant_tensor=True)
            self.conv = QuantConv2d(2, 4, 3, padding=1, **conv_kwargs())
            self.fc = QuantLinear(4 * 2 * 2, 3, **conv_kwargs())

        def forward(self, x):
            y = torch.nn.functional.max_pool2d(torch.relu(self.conv(self.inp(x))), 2)
            return self.fc(y.view(y.size(0), -1))

    model = calibrate(Net(), (2, 2, 4, 4))
    x = torch.randn(2, 2, 4, 4)
    artifact, got, ref, _ = export_and_execute(model, x)
    assert [n.op_type for n in artifact.graph.node] == ["Conv", "Relu", "MaxPool", "Flatten", "Gemm"]
    np.testing.assert_array_equal(got, ref)


def test_input_quantizers_of_layers_quantize_the_graph_input_and_requantize_layer_outputs():
    """A first layer with its own input_quant, and a second one re-quantizing the first's output more coarsely."""
    coarse = {"input_scaling_impl_type": "const", "input_scaling_init": 8.0}  # scale 2**-4
    model = torch.nn.Sequential(
        QuantConv2d(2, 3, 3, input_quant=DpuInt8Act, **conv_kwargs()),
        QuantConv2d(3, 2, 1, input_quant=DpuInt8Act, **coarse, **conv_kwargs()),
    )
    model = calibrate(model, (2, 2, 6, 6))
    x = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(4))
    for exporter in ("pyxir", "pyxir-dpuv2"):
        artifact, got, ref, _ = export_and_execute(model, x, exporter)
        grids = [[a.ints for a in n.attribute if a.name == "vai_quant_in"][0] for n in artifact.graph.node]
        assert grids[-1] == [8, 4] and grids[0] != grids[-1]
        np.testing.assert_array_equal(got, ref)


def test_the_raw_input_stays_float_for_readers_that_do_not_quantize_it_the_same_way():
    """x feeds a QuantIdentity (through dropout) and, unquantized, a conv with its own coarser input quantizer."""
    from brevitas.nn import QuantEltwiseAdd

    class TwoPaths(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = QuantIdentity(act_quant=DpuInt8Act)
            self.drop = torch.nn.Dropout(0.5)
            self.a = QuantConv2d(2, 3, 1, **conv_kwargs())
            self.b = QuantConv2d(2, 3, 1, input_quant=DpuInt8Act, input_scaling_impl_type="const",
                                 input_scaling_init=8.0, **conv_kwargs())  # fmt: skip
            self.add = QuantEltwiseAdd(input_quant=DpuInt8Act, output_quant=DpuInt8Act)

        def forward(self, x):
            return self.add(self.a(self.drop(self.inp(x))), self.b(x))

    model = calibrate(TwoPaths(), (2, 2, 4, 4))
    x = torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(5))
    artifact, got, ref, _ = export_and_execute(model, x)
    grids = {n.name.split("/")[0]: [a.ints for a in n.attribute if a.name == "vai_quant_in"][0] for n in
             artifact.graph.node}  # fmt: skip
    assert grids["b"] == [8, 4] and grids["a"] != grids["b"]
    np.testing.assert_array_equal(got, ref)


def test_a_model_on_any_device_exports_and_matches(device):
    torch.manual_seed(0)
    model = calibrate(small_cnn(), (2, 4, 8, 8)).to(device)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    artifact = bx.export(model, x.to(device), exporter="pyxir-dpuv2")
    with torch.no_grad():
        ref = model(x.to(device)).value.cpu().numpy()
    np.testing.assert_array_equal(bx.get_exporter("pyxir-dpuv2").run(artifact, x.to(device))[0], ref)
