"""Checkpoints under fuzzing: every layer and quantizer kind round-trips and resumes exactly;
a truncated, corrupt or foreign file is refused with the file and the keys named, model untouched.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
from _fuzz_nets import ALL_KINDS, NetSpec, build, net_specs
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from torch import nn

from brevitas.checkpoint import load_checkpoint, load_state_dict, save_checkpoint
from brevitas.demo.models import FloatLeNet, QuantLeNet
from brevitas.errors import BrevitasError, CheckpointError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _loss(out: Any) -> torch.Tensor:
    value = out.value if hasattr(out, "value") else out
    return value.float().pow(2).mean()


def _optimizer(model: nn.Module) -> torch.optim.Optimizer:
    # a model with nothing to learn (constant quantizers, pooling) still has statistics to collect
    params = list(model.parameters()) or [nn.Parameter(torch.zeros(()))]
    return torch.optim.Adam(params, lr=0.01)


def _steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, n: int, seed: int) -> None:
    torch.manual_seed(seed)  # dropout draws the same masks in both runs
    model.train()
    for i in range(n):
        opt.zero_grad(set_to_none=True)
        loss = _loss(model(x * (1 + 0.25 * i)))
        if loss.requires_grad:
            loss.backward()
        opt.step()


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]) or (a[key].isnan() == b[key].isnan()).all(), key


def _round_trip(spec: NetSpec, before: int, after: int) -> None:
    note(spec.describe())
    try:
        trained, x = build(spec, seed=0)
        fresh, _ = build(spec, seed=1)  # another initialization
    except BrevitasError as exc:  # a combination the solver refuses, with a message
        assert str(exc)
        event("refused by the solver")
        return
    try:  # some combinations are refused only when they meet data (e.g. a bias on a per-channel input scale)
        with torch.no_grad():
            trained.eval()(x)
    except BrevitasError as exc:
        assert str(exc)
        event("refused at the first forward")
        return
    event(f"layer {spec.kinds[0]}")
    opt = _optimizer(trained)
    _steps(trained, opt, x, before, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(trained, Path(tmp) / "model.pt", optimizer=opt.state_dict(), step=before)
        extra = load_checkpoint(fresh, path)
    assert extra["step"] == before
    _assert_same_state(_snapshot(trained), _snapshot(fresh))
    # resume: both continue from the same state, mid-statistics-phase included, and stay identical
    fresh_opt = _optimizer(fresh)
    fresh_opt.load_state_dict(extra["optimizer"])
    _steps(trained, opt, x, after, seed=3)
    _steps(fresh, fresh_opt, x, after, seed=3)
    _assert_same_state(_snapshot(trained), _snapshot(fresh))
    trained.eval()
    fresh.eval()
    with torch.no_grad():
        a, b = trained(x), fresh(x)
    assert torch.equal(a, b) or (a.isnan() == b.isnan()).all()


@FUZZ
@given(spec=net_specs(), before=st.integers(0, 4), after=st.integers(1, 3))
def test_round_trip_and_resume_of_every_layer_and_quantizer_kind(spec: NetSpec, before: int, after: int) -> None:
    _round_trip(spec, before, after)


@pytest.mark.slow
@SLOW_FUZZ
@given(spec=net_specs(max_layers=3), before=st.integers(0, 6), after=st.integers(1, 4))
def test_round_trip_and_resume_slow(spec: NetSpec, before: int, after: int) -> None:
    _round_trip(spec, before, after)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_every_layer_kind_round_trips_with_default_quantizers(kind: str, tmp_path: Path) -> None:
    from _fuzz_nets import QuantSpec

    from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerTensorFloat

    spec = NetSpec((kind,), QuantSpec(Int8WeightPerTensorFloat, {}, Int8ActPerTensorFloat, {"collect_stats_steps": 2}))
    model, x = build(spec, seed=0)
    other, _ = build(spec, seed=1)
    _steps(model, _optimizer(model), x, 1, seed=0)  # mid-statistics (1 of 2 steps)
    load_checkpoint(other, save_checkpoint(model, tmp_path / f"{kind}.pt"))
    _assert_same_state(_snapshot(model), _snapshot(other))


# ---------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------


def _trained_lenet(seed: int = 0, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)
    model = QuantLeNet(**kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
    _steps(model, opt, x, 2, seed=seed)
    return model


@pytest.fixture(scope="module")
def target() -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A trained model the bad files are loaded into (it must never change), with its state."""
    model = _trained_lenet(seed=5)
    return model, _snapshot(model)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("ckpt")
    model = _trained_lenet()
    ours = save_checkpoint(model, folder / "lenet.pt")
    plain = folder / "lenet-plain.pt"
    torch.save(model.state_dict(), plain)
    return ours, plain, _snapshot(model)


@FUZZ
@given(fraction=st.floats(0.0, 0.999), plain=st.booleans())
def test_a_truncated_file_is_refused_naming_it_and_the_model_is_untouched(
    saved: tuple[Path, Path, dict[str, torch.Tensor]],
    target: tuple[nn.Module, dict[str, torch.Tensor]],
    fraction: float,
    plain: bool,
) -> None:
    source = saved[1] if plain else saved[0]
    data = source.read_bytes()
    model, before = target
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "cut.pt"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(model, cut)
    assert str(cut) in str(err.value)
    assert "model was not changed" in str(err.value)
    _assert_same_state(before, _snapshot(model))


@FUZZ
@given(data=st.data())
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_corrupt_file_is_refused_or_loads_exactly_what_was_saved(
    saved: tuple[Path, Path, dict[str, torch.Tensor]],
    target: tuple[nn.Module, dict[str, torch.Tensor]],
    data: st.DataObject,
) -> None:
    ours, _, original = saved
    raw = bytearray(ours.read_bytes())
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        raw[data.draw(st.integers(0, len(raw) - 1), label="offset")] ^= data.draw(st.integers(1, 255), label="xor")
    model, before = target
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "bad.pt"
        bad.write_bytes(bytes(raw))
        try:
            load_checkpoint(model, bad)
        except CheckpointError as exc:
            assert str(bad) in str(exc)
            _assert_same_state(before, _snapshot(model))
            event("refused")
        else:  # the flips hit bytes that carry no data (zip padding, names of unused records)
            _assert_same_state(original, _snapshot(model))
            load_state_dict(model, before)  # back to the target's own state for the next example
            event("loaded, identical")


def test_flipped_tensor_bytes_are_caught_by_the_checksum(saved: tuple[Path, Path, dict[str, torch.Tensor]]) -> None:
    ours, _, _ = saved
    raw = bytearray(ours.read_bytes())
    weight = saved[2]["fc1.weight"]
    needle = weight.reshape(-1)[:4].numpy().tobytes()
    offset = bytes(raw).find(needle)
    assert offset > 0
    raw[offset] ^= 0x01  # one bit of one weight: torch.load alone would not notice
    target = _trained_lenet(seed=7)
    before = _snapshot(target)
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "flipped.pt"
        bad.write_bytes(bytes(raw))
        assert torch.load(bad, weights_only=True)["state_dict"]["fc1.weight"].shape == weight.shape
        with pytest.raises(CheckpointError, match="corrupt.*checksum"):
            load_checkpoint(target, bad)
    _assert_same_state(before, _snapshot(target))


@pytest.mark.parametrize(
    ("other", "keys"),
    [
        (
            lambda: QuantLeNet(weight_scaling_impl_type="parameter_from_stats", weight_scaling_per_output_channel=True),
            ["missing from the checkpoint", "conv1.weight_quant.tensor_quant.scaling_impl.value"],
        ),
        (lambda: QuantLeNet(num_classes=7), ["fc3.weight", "(7, 84)"]),
        (lambda: QuantLeNet(weight_bit_width_impl_type="parameter"), ["bit_width_impl"]),
        (FloatLeNet, ["not in the model", "quant_inp.act_quant"]),
        (lambda: nn.Linear(3, 2), ["missing from the checkpoint: weight, bias"]),
    ],
    ids=["per-channel", "classes", "learned-bit-width", "float-model", "unrelated"],
)
def test_another_architecture_is_refused_naming_the_file_and_keys(
    saved: tuple[Path, Path, dict[str, torch.Tensor]], other: Any, keys: list[str]
) -> None:
    for path in saved[:2]:
        torch.manual_seed(3)
        target = other()
        before = _snapshot(target)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(target, path)
        text = str(err.value)
        assert str(path) in text
        for key in keys:
            assert key in text, (key, text)
        _assert_same_state(before, _snapshot(target))


def test_missing_file_and_non_checkpoint_files_are_refused(tmp_path: Path) -> None:
    model = QuantLeNet()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(model, tmp_path / "nope.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a state_dict"):
        load_checkpoint(model, tmp_path / "list.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="text.pt"):
        load_checkpoint(model, tmp_path / "text.pt")


def test_a_component_failing_during_load_rolls_everything_back() -> None:
    class Picky(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("flag", torch.zeros(()))

        def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
            super()._load_from_state_dict(state_dict, prefix, *args)
            if float(self.flag) < 0:
                raise ValueError("flag must be >= 0")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(QuantLeNet(), Picky())  # the LeNet loads first, then Picky refuses

    target = make()
    source = _trained_lenet(seed=9)
    sd = {f"0.{k}": v for k, v in source.state_dict().items()} | {"1.flag": torch.tensor(-1.0)}
    before = _snapshot(target)
    with pytest.raises(CheckpointError, match="flag must be >= 0"):
        load_state_dict(target, sd)
    _assert_same_state(before, _snapshot(target))
    x = torch.rand(2, 1, 8, 8)
    target.eval()
    reference = make().eval()
    with torch.no_grad():
        assert torch.equal(target(x), reference(x))


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _trained_lenet()
    path = save_checkpoint(model, tmp_path / "model.pt")
    good = path.read_bytes()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(QuantLeNet(), path)
    assert path.read_bytes() == good  # the old checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temporary left behind
