"""torchrun support: one process per rank, each reading its equal part of the epoch plan.

Decided once at start-up from torchrun's environment variables; a plain
`camtrap-fast train` is a world of one and never touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # Where collectives' tensors live: NCCL only takes CUDA tensors (a CPU one fails at the first broadcast).
    collective_device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def local_rank() -> int | None:
    """This process's rank on its machine under torchrun; None for a plain (world of one) run."""
    return int(os.environ.get("LOCAL_RANK", 0)) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None


def init_world(device: torch.device) -> World:
    """The process group for `device` (each rank's own: `devices.resolve_device(..., local_rank())`)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return World()
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return World(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank() or 0,
                 collective_device=device if backend == "nccl" else torch.device("cpu"))


def broadcast_flag(world: World, value: bool) -> bool:
    """Rank 0's decision (e.g. early stop) for every rank, so no rank waits on a collective the others skipped."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    flag = torch.tensor([1 if value else 0], device=world.collective_device)
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.destroy_process_group()
