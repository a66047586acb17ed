"""brevitas.graph.tracer: what is kept whole, where nodes come from, and what an untraceable model reports."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brevitas.errors import BrevitasError
from brevitas.graph.tracer import GraphTracer, UntraceableModelError, enclosing_module, matches_leaf, trace


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)) + x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 2, 1)
        self.body = nn.Sequential(Block(), Block())
        self.head = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = self.body(x)
        return self.head(torch.flatten(x, 1))


def _modules_called(gm: torch.fx.GraphModule) -> list[str]:
    return [str(n.target) for n in gm.graph.nodes if n.op == "call_module"]


def test_torch_nn_layers_are_leaves_user_modules_are_traced_through() -> None:
    gm = trace(Net())
    assert _modules_called(gm) == ["stem", "body.0.conv", "body.0.act", "body.1.conv", "body.1.act", "head"]
    functions = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert F.relu in functions and torch.flatten in functions
    x = torch.randn(2, 2, 4, 4)
    model = Net()
    torch.testing.assert_close(trace(model)(x), model(x))


def test_trace_shares_the_model_modules() -> None:
    model = Net()
    gm = trace(model)
    assert gm.get_submodule("body.0.conv") is model.body[0].conv


def test_enclosing_module_of_functions_and_modules() -> None:
    gm = trace(Net())
    where = {n.name: enclosing_module(n) for n in gm.graph.nodes if n.op in ("call_function", "call_module")}
    assert where["relu"] == ""  # F.relu in Net.forward
    assert where["add"] == "body.0" and where["add_1"] == "body.1"  # "+" in Block.forward
    assert where["body_0_conv"] == "body.0"
    assert where["head"] == ""


@pytest.mark.parametrize(
    "spec",
    [["body.*"], [re.compile(r"body\.\d")], [Block]],
    ids=["glob", "regex", "class"],
)
def test_leaf_modules(spec: list[object]) -> None:
    gm = trace(Net(), leaf_modules=spec)  # type: ignore[arg-type]
    assert _modules_called(gm) == ["stem", "body.0", "body.1", "head"]


def test_matches_leaf() -> None:
    relu = nn.ReLU()
    assert matches_leaf("a.b", relu, ["a.*"])
    assert not matches_leaf("a.b", relu, ["a"])  # globs match the whole name
    assert matches_leaf("x", relu, [nn.ReLU])
    assert not matches_leaf("x", relu, [re.compile("y")])


def test_quant_layers_are_leaves() -> None:
    from brevitas.nn import QuantReLU

    class Custom(nn.Module):  # a user module holding a proxy is kept whole too
        def __init__(self) -> None:
            super().__init__()
            self.act_quant = QuantReLU().act_quant

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act_quant(x).value

    model = nn.Sequential(nn.Linear(2, 2), QuantReLU(), Custom())
    graph = GraphTracer().trace(model)
    assert [str(n.target) for n in graph.nodes if n.op == "call_module"] == ["0", "1", "2"]


class Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


class Halve(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[: len(x) // 2]


class Loop(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(row for row in x)  # type: ignore[return-value]


class ToInt(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(int(x.sum()))


@pytest.mark.parametrize(
    ("cls", "construct", "line"),
    [
        (Gate, "data-dependent control flow", "if x.sum() > 0:"),
        (Halve, "len() of a tensor", "return x[: len(x) // 2]"),
        (Loop, "iteration over a tensor", "return sum(row for row in x)"),
        (ToInt, "a tensor used as a Python value", "x.new_zeros(int(x.sum()))"),
    ],
)
def test_untraceable_module_is_named_with_construct_and_fix(cls: type[nn.Module], construct: str, line: str) -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), cls()))
    with pytest.raises(UntraceableModelError) as info:
        trace(model)
    err = info.value
    assert isinstance(err, BrevitasError) and isinstance(err, RuntimeError)
    assert err.module == "1.1"
    assert construct in err.construct and line in err.construct
    assert "test_graph_tracer.py" in err.construct  # where it is
    text = str(err)
    assert f"module '1.1' ({cls.__name__})" in text
    assert "leaf_modules=['1.1']" in text and "rewrite" in text
    assert isinstance(err.__cause__, Exception)
    # the advice works: kept whole, the model traces
    gm = trace(model, leaf_modules=["1.1"])
    assert "1.1" in _modules_called(gm)


def test_untraceable_top_level_forward() -> None:
    class Top(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.mean() > 0 else -x

    with pytest.raises(UntraceableModelError, match=r"the model \(Top\) in its own forward\(\)") as info:
        trace(Top())
    assert info.value.module == ""
    assert "Move that code into a submodule" in str(info.value)


def test_a_failed_trace_does_not_leak_into_the_next() -> None:
    bad = nn.Sequential(nn.Linear(2, 2), Gate())
    with pytest.raises(UntraceableModelError):
        trace(bad)
    gm = trace(nn.Sequential(nn.Linear(2, 2)))
    assert all(not n.meta.get("nn_module_stack") or "1" not in str(n.meta["nn_module_stack"]) for n in gm.graph.nodes)
