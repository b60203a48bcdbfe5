"""Which of a launch's processes this one is, for a synthesis spread over processes, GPUs and machines.

Under `accelerate launch` (or torchrun: WORLD_SIZE > 1) every process prepares the same request, process 0 alone writes
the manifest, shard k of the plan is made by process k mod N, and process 0 assembles the dataset once all shards
exist. A shard's images depend only on the seed rule, so the set is the one a single process makes, and a shard is
written atomically, so a kill of any process loses only the shards in progress: the same command resumes. Across
machines --out must be one shared folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

# A barrier waits for the slowest process; the default 30 minutes of torch.distributed would end long syntheses.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Processes:
    index: int = 0
    count: int = 1
    state: object = None  # accelerate's PartialState when launched with several processes

    @classmethod
    def from_environment(cls) -> Processes:
        """One process unless launched with several (the environment's WORLD_SIZE); then accelerate's view of them."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        import torch
        from accelerate import PartialState

        # without an accelerator accelerate sees several processes only when told it runs on CPUs (gloo)
        state = PartialState(cpu=not torch.accelerator.is_available(), timeout=BARRIER_TIMEOUT)
        return cls(state.process_index, state.num_processes, state)

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def device(self):
        """This process's device (its own GPU under a multi-GPU launch); None for a single process."""
        return None if self.state is None else self.state.device

    def wait(self):
        """Every process reaches this point before any goes on."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def mine(self, items: list) -> list:
        """This process's share of `items`: every count-th one from its index."""
        return items[self.index::self.count]
