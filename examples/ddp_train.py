"""Quantization-aware training of the QuantLeNet with DistributedDataParallel.

Run on two CPU processes (gloo), or one process per GPU (nccl)::

    torchrun --standalone --nproc_per_node=2 examples/ddp_train.py --checkpoint lenet.pt

or in one process, without torchrun: ``python examples/ddp_train.py``.

Nothing here is specific to Brevitas: it is PyTorch's own recipe
(``init_process_group``, ``DistributedSampler``, ``DistributedDataParallel``).
Every quantizer state is a parameter or a buffer, and the activation
statistics gathered during the collection phase are taken over the global
batch of all ranks by the quantizers themselves, so every rank holds the same
scales at every step: ``forward_sync_buffers=False`` is safe (and saves a
broadcast per step). At the end each rank checksums its whole state, the
checksums are compared, and rank 0 writes the checkpoint, which loads into a
single-process model with ``brevitas.checkpoint.load_checkpoint``.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from brevitas.checkpoint import save_checkpoint, state_checksum
from brevitas.demo.data import load_digits_split
from brevitas.demo.models import QuantLeNet
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Uint8ActPerTensorFloat


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size per rank (default 32)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    parser.add_argument(
        "--collect-stats-steps", type=int, default=30, help="steps of activation statistics before learned scales"
    )
    parser.add_argument("--weight-bit-width", type=int, default=4)
    parser.add_argument("--act-bit-width", type=int, default=8)
    parser.add_argument("--checkpoint", default="", help="where rank 0 writes the checkpoint")
    return parser.parse_args()


def setup() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes in the environment (or run alone)."""
    if "RANK" not in os.environ:
        return 0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu")
    use_cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        return dist.get_rank(), dist.get_world_size(), torch.device("cuda", local_rank)
    return dist.get_rank(), dist.get_world_size(), torch.device("cpu")


def main() -> None:
    args = parse_args()
    rank, world, device = setup()
    torch.manual_seed(0)  # DistributedDataParallel also broadcasts rank 0's initial state

    steps = args.collect_stats_steps
    model = QuantLeNet(
        weight_bit_width=args.weight_bit_width,
        act_bit_width=args.act_bit_width,
        act_quant=Uint8ActPerTensorFloat.let(collect_stats_steps=steps),
        input_quant=Int8ActPerTensorFloat.let(collect_stats_steps=steps),
    ).to(device)
    ddp = model if world == 1 else DistributedDataParallel(model, forward_sync_buffers=False)

    split = load_digits_split(seed=0)
    data = TensorDataset(split.x_train, split.y_train)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0, drop_last=True)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    optimizer = torch.optim.Adam(ddp.parameters(), lr=args.lr)

    step, epoch = 0, 0
    ddp.train()
    while step < args.steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(ddp(x), y)
            loss.backward()
            optimizer.step()
            step += 1
            if rank == 0 and (step % 50 == 0 or step == args.steps):
                print(f"step {step}: loss {float(loss.detach()):.4f}", flush=True)
            if step == args.steps:
                break
        epoch += 1

    # every rank must hold the same weights, scales, statistics and counters
    digest = state_checksum(model.state_dict())
    digests = [None] * world
    if world > 1:
        dist.all_gather_object(digests, digest)
    else:
        digests = [digest]
    if len(set(digests)) != 1:
        raise SystemExit(f"rank {rank}: the model state differs across ranks: {digests}")

    model.eval()
    with torch.no_grad():
        correct = (model(split.x_test.to(device)).argmax(1) == split.y_test.to(device)).float().mean()
    if rank == 0:
        print(f"model state identical on every rank ({world} rank(s), sha256 {digest[:16]})")
        print(f"test accuracy: {100 * float(correct):.1f}%")
        if args.checkpoint:
            print(f"checkpoint written to {save_checkpoint(model, args.checkpoint, step=step)}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
