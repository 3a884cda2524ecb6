"""Process-group plumbing for torchrun: DDP (gloo on CPU, nccl on GPU) and FSDP for models too big for one device.

Outside torchrun (no WORLD_SIZE in the environment) everything here is a no-op with rank 0 of 1, so
the trainer has one code path. Batches are split by rows (rank::world) of the same global batch that a
single process would see, which is what makes a 2-process run follow the 1-process loss curve.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def setup(device: str | None = None) -> Dist:
    """Join the torchrun process group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world == 1:
        return Dist(device=dev)
    if not dist.is_initialized():
        # nccl needs one GPU per process; gloo runs anywhere (and is what the CPU tests use).
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    logger.info("process %d of %d on %s", dist.get_rank(), world, dev)
    return Dist(rank=dist.get_rank(), world=world, local_rank=local_rank, device=dev)


def all_sum(value: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum over processes (a copy; the argument is left alone)."""
    out = value.detach().clone().to(d.device)
    if d.active:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def broadcast(tensors, d: Dist) -> None:
    """Rank 0's values of `tensors`, written in place on every process."""
    if d.active:
        for t in tensors:
            dist.broadcast(t.data, src=0)


def barrier(d: Dist) -> None:
    if d.active:
        dist.barrier()


def wrap(module: nn.Module, d: Dist, sharding: str) -> nn.Module:
    """DDP (every process holds the whole model) or FSDP2 (parameters sharded per layer, gathered on use)."""
    if not d.active:
        return module
    if sharding == "fsdp":
        from torch.distributed.fsdp import fully_shard

        # One unit per encoder layer, then the root (embeddings, heads): only one layer's full weights
        # live at a time, which is what lets a model larger than one device train.
        for layer in module.model.layers:
            fully_shard(layer)
        return fully_shard(module)
    ids = [d.device.index] if d.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (evaluation calls the model itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def shard_rows(batch: dict[str, torch.Tensor], d: Dist) -> dict[str, torch.Tensor]:
    """Rows rank, rank + world, ... of every tensor in the global batch."""
    if not d.active:
        return batch
    rows = next(iter(batch.values())).shape[0]
    if rows % d.world:
        raise ValueError(f"global batch of {rows} rows does not split over {d.world} processes")
    return {k: v[d.rank :: d.world] for k, v in batch.items()}


def to_device(batch: dict[str, torch.Tensor], d: Dist, host_keys: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The batch on the process's device, except host_keys: those stay on the CPU, where the model and
    the loss read their values (padding layout, predicted positions) without synchronising with a GPU."""
    return {k: v if k in host_keys else v.to(d.device, non_blocking=True) for k, v in batch.items()}


def teardown(d: Dist) -> None:
    if d.active and dist.is_initialized():
        dist.destroy_process_group()
