"""Sharding a run over processes: ``torch.distributed`` ranks or independent ``--shard`` jobs.

A run's corpus is cut into chunks that depend only on the corpus size and ``chunk_size``;
chunk ``i`` belongs to worker ``i % world_size``. Under ``torchrun`` (``WORLD_SIZE > 1``)
the workers are the ranks of a process group (gloo on CPU, NCCL on CUDA), which meet at
barriers so that rank 0 can merge the chunks all ranks wrote into the same store. A
SLURM job array uses :func:`shard_context` instead: each job computes its chunks with no
communication at all, and a final run without ``--shard`` merges them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

__all__ = [
    "DistContext",
    "distributed_context",
    "shard_context",
    "parse_shard",
    "env_world_size",
    "local_device",
    "shutdown_distributed",
]

log = logging.getLogger(__name__)

#: How long a rank waits at a barrier for the others (env ``IDIOMLENS_DIST_TIMEOUT_S``).
DEFAULT_TIMEOUT_S = 6 * 3600


@dataclass(frozen=True, kw_only=True)
class DistContext:
    """Which share of the chunks this process computes.

    Args:
        rank: this worker's index in ``[0, world_size)``.
        world_size: number of workers.
        collective: ``True`` for ranks of a ``torch.distributed`` group (barriers, rank 0
            merges); ``False`` for independent shard jobs (no merge) and single processes.
    """

    rank: int = 0
    world_size: int = 1
    collective: bool = False

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"invalid shard {self.rank}/{self.world_size}")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_shard_job(self) -> bool:
        """An independent job of an array (computes its chunks, never merges)."""
        return self.world_size > 1 and not self.collective

    def owns(self, chunk_index: int) -> bool:
        """Whether chunk ``chunk_index`` is computed by this worker."""
        return chunk_index % self.world_size == self.rank

    @property
    def writer(self) -> str | None:
        """The manifest this worker writes (``None``: the main ``manifest.json``)."""
        if self.is_shard_job:
            return f"shard-{self.rank:05d}-of-{self.world_size:05d}"
        return None if self.rank == 0 else f"rank-{self.rank:05d}"

    def barrier(self) -> None:
        """Wait for all ranks (no-op outside a process group)."""
        if self.collective:
            import torch.distributed as dist

            if dist.get_backend() == "nccl":
                dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                dist.barrier()


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by torchrun/srun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_device() -> str | None:
    """``cuda:{LOCAL_RANK}`` under a multi-process launch with CUDA, else ``None``."""
    if env_world_size() > 1 and torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return None


def distributed_context(device: Any = None) -> DistContext:
    """This process's context; initialises the process group under a torchrun launch.

    The backend is NCCL when ``device`` is a CUDA device, gloo otherwise. An already
    initialised group (e.g. by the user's own script) is reused as is.
    """
    import torch.distributed as dist

    if not dist.is_available():
        return DistContext()
    if not dist.is_initialized():
        if env_world_size() <= 1:
            return DistContext()
        use_cuda = device is not None and torch.device(device).type == "cuda"
        if use_cuda:
            torch.cuda.set_device(torch.device(device))
        timeout = timedelta(
            seconds=int(os.environ.get("IDIOMLENS_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
        )
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timeout)
        log.info("rank %d/%d joined the process group", dist.get_rank(), dist.get_world_size())
    world = dist.get_world_size()
    return DistContext(rank=dist.get_rank(), world_size=world, collective=world > 1)


def shard_context(shard: tuple[int, int]) -> DistContext:
    """The context of job ``i`` of ``n`` independent shard jobs (``--shard i/n``)."""
    index, count = shard
    return DistContext(rank=index, world_size=count, collective=False)


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"i/n"`` (0-based ``i``); ``ValueError`` with the expected form otherwise.

    >>> parse_shard("2/8")
    (2, 8)
    """
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {text!r}: need 0 <= i < N")
    return index, count


def shutdown_distributed() -> None:
    """Destroy the default process group if one is initialised."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
