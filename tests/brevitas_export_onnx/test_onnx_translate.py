"""The float part of the ONNX translation: every torch.nn layer, function and tensor method it knows.

Each model is translated with the base :class:`OnnxTranslator`, checked with
``onnx.checker`` (full check) and run in onnxruntime on a batch size it was
not traced with (the batch is dynamic); the output must equal PyTorch's to
float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brevitas.export.trace import trace
from brevitas_export_onnx.runtime import run
from brevitas_export_onnx.translate import OnnxTranslator


class Fn(nn.Module):
    """A module running a function of its inputs (traced through)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *xs: Any) -> Any:  # pragma: no cover - replaced per instance
        raise NotImplementedError


def _fn(fn: Callable[[torch.Tensor], Any]) -> nn.Module:
    class One(nn.Module):
        def forward(self, x: torch.Tensor) -> Any:
            return fn(x)

    return One()


def _fn2(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> nn.Module:
    class Two(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> Any:
            return fn(x, y)

    return Two()


def _bn() -> nn.Module:
    bn = nn.BatchNorm2d(3)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    return bn


#: name -> (module factory, input shapes)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[tuple[int, ...], ...]]] = {
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1), ((2, 3, 9),)),
    "conv2d-same-dilated-grouped": (lambda: nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=2), ((2, 4, 7, 7),)),
    "conv2d-reflect": (lambda: nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect"), ((2, 3, 5, 5),)),
    "conv2d-replicate": (lambda: nn.Conv2d(3, 2, 3, padding=2, padding_mode="replicate", bias=False), ((2, 3, 5, 5),)),
    "conv3d": (lambda: nn.Conv3d(2, 2, 2), ((2, 2, 3, 3, 3),)),
    "convtranspose2d": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), ((2, 3, 4, 4),)),
    "convtranspose1d-grouped": (lambda: nn.ConvTranspose1d(4, 4, 2, stride=2, groups=2), ((2, 4, 5),)),
    "linear-2d": (lambda: nn.Linear(5, 3), ((2, 5),)),
    "linear-3d": (lambda: nn.Linear(5, 3), ((2, 4, 5),)),
    "batchnorm": (_bn, ((2, 3, 4, 4),)),
    "relu6-leaky-hardtanh": (lambda: nn.Sequential(nn.ReLU6(), nn.LeakyReLU(0.1), nn.Hardtanh(-0.5, 2.0)), ((2, 6),)),
    "sigmoid-tanh-softmax": (lambda: nn.Sequential(nn.Sigmoid(), nn.Tanh(), nn.Softmax(dim=1)), ((2, 6),)),
    "maxpool-ceil": (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), ((2, 3, 8, 8),)),
    "maxpool-dilated-1d": (lambda: nn.MaxPool1d(2, dilation=2), ((2, 3, 9),)),
    "avgpool-exclude-pad": (lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), ((2, 3, 7, 7),)),
    "adaptive-avg-global": (lambda: nn.AdaptiveAvgPool2d(1), ((2, 3, 5, 7),)),
    "adaptive-avg-windows": (lambda: nn.AdaptiveAvgPool2d((2, 3)), ((2, 3, 4, 6),)),
    "adaptive-max": (lambda: nn.AdaptiveMaxPool2d(1), ((2, 3, 4, 6),)),
    "flatten-dropout-identity": (lambda: nn.Sequential(nn.Dropout(), nn.Identity(), nn.Flatten()), ((2, 3, 2, 2),)),
    "flatten-middle": (lambda: nn.Flatten(1, 2), ((2, 3, 2, 2),)),
    "upsample-nearest": (lambda: nn.Upsample(scale_factor=2), ((2, 3, 3, 3),)),
    "upsample-bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), ((2, 3, 3, 3),)),
    "view-size": (lambda: _fn(lambda x: torch.relu(x).view(x.size(0), -1)), ((2, 3, 4),)),
    "reshape-permute-transpose": (
        lambda: _fn(lambda x: x.reshape(x.shape[0], 4, 3).permute(0, 2, 1).transpose(1, 2).contiguous()),
        ((2, 3, 4),),
    ),
    "arithmetic": (lambda: _fn(lambda x: (x + 1) * 2 - x / 3 - (-x) + torch.add(x, x, alpha=0.5)), ((2, 3),)),
    "functional-pools": (
        lambda: _fn(lambda x: F.max_pool2d(x, 2) + F.avg_pool2d(x, 2) + F.adaptive_avg_pool2d(x, 2)),
        ((2, 3, 4, 4),),
    ),
    "functional-acts": (
        lambda: _fn(lambda x: F.relu(x) + torch.sigmoid(x) + torch.tanh(x) + F.hardtanh(x) + x.clamp(-0.5, 0.5)),
        ((2, 3),),
    ),
    "mean-sum-squeeze": (lambda: _fn(lambda x: x.mean((2, 3), keepdim=True).squeeze(3) + x.sum(3)[..., :1]),
                         ((2, 3, 4, 5),)),  # fmt: skip
    "slice-getitem": (lambda: _fn(lambda x: x[:, 1:3, ::2] * x[:, 0:1, 1::2]), ((2, 4, 6),)),
    "cat-two-inputs": (lambda: _fn2(lambda x, y: torch.cat([x, y * 2], dim=1)), ((2, 3, 4), (2, 2, 4))),
    "two-outputs": (lambda: _fn2(lambda x, y: (x + y, torch.flatten(x * y, 1))), ((2, 3, 4), (2, 3, 4))),
    "unsqueeze-linear-fn": (lambda: _fn(lambda x: F.linear(x.unsqueeze(1), torch.ones(2, 3))), ((2, 3),)),
}


def _translate(model: nn.Module, inputs: tuple[torch.Tensor, ...], **options: Any) -> onnx.ModelProto:
    onnx_model, problems = OnnxTranslator(trace(model.eval(), inputs), **options).translate()
    assert not problems, [str(p) for p in problems]
    return onnx_model


@pytest.mark.parametrize("name", list(CASES))
def test_float_translation_matches_pytorch_on_another_batch(name: str) -> None:
    torch.manual_seed(0)
    make, shapes = CASES[name]
    model = make()
    example = tuple(torch.randn(*s) for s in shapes)
    onnx_model = _translate(model, example)
    onnx.checker.check_model(onnx_model, full_check=True)
    assert all(i.type.tensor_type.shape.dim[0].dim_param == "batch" for i in onnx_model.graph.input)
    other = tuple(torch.randn(3, *s[1:]) for s in shapes)
    with torch.no_grad():
        ref = model(*other)
    refs = list(ref) if isinstance(ref, tuple) else [ref]
    outs = run(onnx_model, *other)
    assert len(outs) == len(refs)
    for out, r in zip(outs, refs):
        np.testing.assert_allclose(out, r.numpy(), rtol=1e-5, atol=1e-5)


def test_node_names_follow_the_modules() -> None:
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.Sequential(nn.ReLU()))
    onnx_model = _translate(model, (torch.randn(1, 3, 2, 2),))
    assert [n.name for n in onnx_model.graph.node] == ["0/Conv", "1.0/Relu"]
    assert onnx_model.graph.output[0].name == "output"


def test_static_batch_option_and_opset_13() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    onnx_model = _translate(model, (torch.randn(2, 2, 2),), dynamic_batch=False, opset_version=13)
    assert onnx_model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    assert onnx_model.opset_import[0].version == 13


def _problems(model: nn.Module, *inputs: torch.Tensor, **options: Any) -> list[Any]:
    onnx_model, problems = OnnxTranslator(trace(model, inputs), **options).translate()
    assert onnx_model is None
    return problems


def test_unknown_function_module_and_option_are_named() -> None:
    class Sorter(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sort(x, dim=1).values

    problems = _problems(nn.Sequential(nn.Linear(3, 3), Sorter(), nn.GRUCell(3, 3)), torch.randn(2, 3))
    assert [p.layer for p in problems] == ["1", "2"]
    assert "sort()" in problems[0].constraint and problems[0].fix
    assert "GRUCell" in problems[1].constraint
    problems = _problems(nn.ReLU(), torch.randn(1, 2), fancy=True, opset_version=9)
    assert "unknown option 'fancy'" in problems[0].constraint
    assert "opset_version=9" in problems[1].constraint


def test_subclass_overriding_forward_is_not_mistaken_for_its_parent() -> None:
    from brevitas.export.trace import is_quant_layer
    from brevitas.nn import QuantReLU

    class DoubleReLU(nn.ReLU):  # user code: traced through, so what it computes is exported
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * torch.relu(x)

    x = torch.tensor([[-1.0, 3.0]])
    assert run(_translate(nn.Sequential(DoubleReLU()), (x,)), x)[0].tolist() == [[0.0, 6.0]]

    class MyQuantReLU(QuantReLU):  # a quant layer is kept whole: a changed forward() cannot be guessed
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    assert is_quant_layer(MyQuantReLU())
    problems = _problems(nn.Sequential(MyQuantReLU()), torch.randn(1, 2))
    assert problems[0].layer == "0" and "MyQuantReLU" in problems[0].constraint


def test_batch_dimension_misuse_is_refused() -> None:
    problems = _problems(_fn(lambda x: x.mean(0)), torch.randn(2, 3))
    assert "batch" in problems[0].constraint
    problems = _problems(_fn(lambda x: x.permute(1, 0)), torch.randn(2, 3))
    assert "batch" in problems[0].constraint


def test_quantized_layers_need_a_quantized_dialect() -> None:
    from brevitas.nn import QuantReLU

    problems = _problems(nn.Sequential(QuantReLU()), torch.randn(2, 3))
    assert problems[0].layer == "0" and "onnx-qcdq" in problems[0].fix
