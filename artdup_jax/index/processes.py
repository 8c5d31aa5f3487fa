"""The processes of a ``jax.distributed`` job that share one index, step by step.

Every process runs the same command (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``,
read by ``training.mesh.maybe_initialize_distributed``); each does its block of the work, and process 0 alone
takes the index's writer lock, plans and commits. After every step the processes tell each other whether it
succeeded (``ProcessGroup.together``, a ``process_allgather`` of one flag each), so an error in one process
stops all of them at the same step with a one-line error, and nothing half-done is committed. Without
``jax.distributed`` the group is one process and every step simply runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import zlib
from typing import Callable, ContextManager, Iterator, TypeVar

import numpy as np

from artdup_jax.training.mesh import maybe_initialize_distributed

T = TypeVar("T")
_CONSISTENT = "the index is consistent (work staged but not merged is kept): re-run the command to continue"


class ProcessFailedError(RuntimeError):
    """Another process of the job failed at a step (its own output says why)."""


class CommandMismatchError(ValueError):
    """The processes of a job were started with different commands."""


def start(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None) -> None:
    """Joins the job given by these values (each overrides its ``JAX_*`` variable) or by the variables alone;
    nothing without them. Must run before any other JAX call of the process."""
    import jax

    given = {"JAX_COORDINATOR_ADDRESS": coordinator, "JAX_NUM_PROCESSES": num_processes,
             "JAX_PROCESS_ID": process_id}
    os.environ.update({name: str(value) for name, value in given.items() if value is not None})
    if not jax.distributed.is_initialized() and maybe_initialize_distributed():
        jax.devices()  # every process meets the others now, not at its first collective


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    index: int  # this process, 0 .. count - 1
    count: int

    @classmethod
    def current(cls) -> "ProcessGroup":
        """The processes of the ``jax.distributed`` job (one process when none was started)."""
        import jax

        if not jax.distributed.is_initialized():
            return cls(0, 1)
        return cls(jax.process_index(), jax.process_count())

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def block(self, num_items: int) -> slice:
        """This process's contiguous block of ``num_items`` items (sizes differ by at most one)."""
        return slice(self.index * num_items // self.count, (self.index + 1) * num_items // self.count)

    def _gather(self, value: int) -> np.ndarray:
        """``(count,)`` int64: ``value`` of every process."""
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(np.array([value], np.int64))).reshape(-1)

    def together(self, step: str, work: Callable[[], T] | None = None) -> T | None:
        """Runs ``work`` here (None: nothing), then waits for every process to end ``step``. Raises this
        process's own error, else ``ProcessFailedError`` if another process failed; returns ``work()``."""
        result, error = None, None
        try:
            result = work() if work is not None else None
        except Exception as failure:  # reported to the others before it is raised here
            error = failure
        if self.count > 1:
            try:
                succeeded = self._gather(int(error is None))
            except Exception as lost:  # a process died (killed, out of memory): the collective fails here
                if isinstance(error, ProcessFailedError):
                    raise error from None  # an inner step's failure: it names the step
                first_line = (str(lost).strip().splitlines() or [type(lost).__name__])[0]
                raise ProcessFailedError(f"a process of the job stopped during {step} ({first_line[:160]}); "
                                         f"{_CONSISTENT}") from error
            if error is None and not succeeded.all():
                failed = int(np.nonzero(succeeded == 0)[0][0])
                raise ProcessFailedError(f"process {failed} of {self.count} failed during {step} (its own output "
                                         f"says why); {_CONSISTENT}")
        if error is not None:
            raise error
        return result

    def same_everywhere(self, what: str, value) -> None:
        """Raises ``CommandMismatchError`` in every process unless all were given the same ``value``
        (JSON-able; compared by checksum)."""
        if self.count == 1:
            return
        digests = self._gather(zlib.crc32(json.dumps(value, sort_keys=True, default=str).encode()))
        differ = np.nonzero(digests != digests[0])[0]
        if len(differ):
            raise CommandMismatchError(f"process {int(differ[0])} of {self.count} was started with other {what} "
                                       f"than process 0: every process must run the same command")

    @contextlib.contextmanager
    def main_holds(self, lock: ContextManager) -> Iterator[None]:
        """Process 0 holds ``lock`` (the index's writer lock) for the block; the others wait until it does."""
        with contextlib.ExitStack() as stack:
            self.together("locking the index", (lambda: stack.enter_context(lock)) if self.is_main else None)
            yield

    def decided_by_main(self, step: str, decide: Callable[[], T], save: Callable[[T], None],
                        load: Callable[[], T]) -> T:
        """Process 0 ``decide``s and ``save``s (to the shared file system); the others ``load`` what it saved."""
        if self.count == 1:
            return decide()
        def decide_and_save() -> T:
            decided = decide()
            save(decided)
            return decided

        decided = self.together(step, decide_and_save if self.is_main else None)
        return decided if self.is_main else load()
