"""DistributedDataParallel: two gloo ranks on CPU train the QuantLeNet exactly like one process.

Two processes (``torch.multiprocessing``) train the demo's QuantLeNet under
``DistributedDataParallel`` (``forward_sync_buffers=False``, so nothing but our
own reduction can keep the quantizers' buffers in step) through the
statistics-collection phase and beyond. Then:

- every parameter and buffer (weights, learned scales and bit-widths, running
  statistics, counters) is identical on both ranks;
- the result equals one process trained on the same global batches;
- rank 0's checkpoint loads into a fresh single-process model and gives
  identical outputs.

The example ``examples/ddp_train.py`` is run under ``torchrun`` too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brevitas.checkpoint import load_checkpoint, save_checkpoint
from brevitas.demo.models import QuantLeNet
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Uint8ActPerTensorFloat
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat

ROOT = Path(__file__).resolve().parents[2]
WORLD = 2
STEPS = 6  # 3 steps of statistics, then 3 with the learned scales
PER_RANK = 8


class CollectInputQuant(ShiftedUint8ActPerTensorFloat):
    """Scale (min-max width: gathered across ranks) and zero-point (max across ranks), 3 steps each."""

    collect_stats_steps = 3


class CollectActQuant(Uint8ActPerTensorFloat):
    """Percentile statistics (gathered across ranks) for 3 steps, then a learned threshold."""

    collect_stats_steps = 3


class RunningMaxActQuant(Uint8ActPerTensorFloat):
    """Running max statistics at every training step (max across ranks)."""

    scaling_impl_type = "stats"
    scaling_stats_op = "max"
    scaling_stats_momentum = 0.5


class RunningAveInputQuant(Int8ActPerTensorFloat):
    """Running mean of |x| (count-weighted mean across ranks)."""

    scaling_impl_type = "stats"
    scaling_stats_op = "ave"
    scaling_stats_momentum = None


CONFIGS: dict[str, dict[str, Any]] = {
    # learned bit-widths and the collect-then-learn activations of the documented quantizers
    "collect": {
        "input_quant": CollectInputQuant,
        "act_quant": CollectActQuant,
        "weight_bit_width_impl_type": "parameter",
    },
    # running statistics every step, per-channel weights
    "running": {
        "input_quant": RunningAveInputQuant,
        "act_quant": RunningMaxActQuant,
        "weight_scaling_per_output_channel": True,
    },
}


def build(config: str) -> nn.Module:
    torch.manual_seed(0)
    return QuantLeNet(**CONFIGS[config])


def batches() -> tuple[torch.Tensor, torch.Tensor]:
    """STEPS global batches of WORLD * PER_RANK digits-like images, the same in every process."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(STEPS, WORLD * PER_RANK, 1, 8, 8, generator=g) * (1 + torch.arange(STEPS).view(-1, 1, 1, 1, 1))
    y = torch.randint(0, 10, (STEPS, WORLD * PER_RANK), generator=g)
    return x, y


def probe() -> torch.Tensor:
    return torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 3


def train(model: nn.Module, params: nn.Module, rank: int | None) -> None:
    """SGD with momentum; ``rank=None`` trains on the whole global batch (one process)."""
    opt = torch.optim.SGD(params.parameters(), lr=0.05, momentum=0.9)
    xs, ys = batches()
    model.train()
    for x, y in zip(xs, ys):
        if rank is not None:
            x, y = x[rank * PER_RANK : (rank + 1) * PER_RANK], y[rank * PER_RANK : (rank + 1) * PER_RANK]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for config in CONFIGS:
            model = build(config)
            ddp = DDP(model, forward_sync_buffers=False)
            train(ddp, ddp, rank)
            model.eval()
            with torch.no_grad():
                out = model(probe())
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            torch.save({"state": state, "out": out}, os.path.join(out_dir, f"{config}-{rank}.pt"))
            if rank == 0:
                save_checkpoint(model, os.path.join(out_dir, f"{config}-checkpoint.pt"))
            dist.barrier()
    finally:
        dist.destroy_process_group()


def _gloo_available() -> bool:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        return False
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not _gloo_available(), reason="needs torch.distributed with gloo on loopback"
)


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ddp")
    init_file = tempfile.mktemp(dir=out)
    mp.spawn(_worker, args=(init_file, str(out)), nprocs=WORLD, join=True)
    return out


def _quant_keys(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k in state if "quant" in k]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_parameter_and_quantizer_buffer_is_identical_across_ranks(ddp_results: Path, config: str) -> None:
    r0 = torch.load(ddp_results / f"{config}-0.pt")
    r1 = torch.load(ddp_results / f"{config}-1.pt")
    assert r0["state"].keys() == r1["state"].keys()
    for key in r0["state"]:
        assert torch.equal(r0["state"][key], r1["state"][key]), f"{key} differs across ranks"
    assert torch.equal(r0["out"], r1["out"])
    # the statistics phase is over and its state is in the checkpoint
    counters = [k for k in r0["state"] if k.endswith("scaling_impl.counter")]
    assert counters
    if config == "collect":
        assert all(int(r0["state"][k]) == 3 for k in counters)
        assert any("bit_width_impl" in k for k in _quant_keys(r0["state"]))
    else:
        assert all(int(r0["state"][k]) == STEPS for k in counters)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_ddp_equals_one_process_on_the_global_batch(ddp_results: Path, config: str) -> None:
    torch.set_num_threads(1)
    single = build(config)
    train(single, single, rank=None)
    ddp = torch.load(ddp_results / f"{config}-0.pt")["state"]
    ref = single.state_dict()
    assert ref.keys() == ddp.keys()
    for key, value in ref.items():
        if value.is_floating_point():
            torch.testing.assert_close(ddp[key], value, rtol=1e-4, atol=1e-5, msg=lambda m, k=key: f"{k}: {m}")
        else:
            assert torch.equal(ddp[key], value), key
    single.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.load(ddp_results / f"{config}-0.pt")["out"], single(probe()))


@pytest.mark.parametrize("config", list(CONFIGS))
def test_rank0_checkpoint_loads_into_a_fresh_single_process_model(ddp_results: Path, config: str) -> None:
    fresh = QuantLeNet(**CONFIGS[config])  # another initialization
    load_checkpoint(fresh, ddp_results / f"{config}-checkpoint.pt")
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(probe()), torch.load(ddp_results / f"{config}-0.pt")["out"])


def test_example_runs_under_torchrun(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ddp.pt"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(ROOT / "examples" / "ddp_train.py"), "--steps", "4", "--collect-stats-steps", "2",
        "--batch-size", "8", "--checkpoint", str(checkpoint),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical on every rank" in done.stdout
    fresh = QuantLeNet()
    load_checkpoint(fresh, checkpoint)
