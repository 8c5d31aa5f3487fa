"""The training state: one pytree holding everything a step reads and writes."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import optax


@flax.struct.dataclass
class TrainState:
    """``step`` () int32; ``params`` and ``batch_stats`` Flax collections; ``opt_state`` optax state.

    ``tx`` is static (not a leaf), so the state can be checkpointed and sharded as a plain pytree.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    @classmethod
    def create(cls, *, params, batch_stats, tx) -> "TrainState":
        return cls(
            step=jax.numpy.zeros((), jax.numpy.int32),
            params=params,
            batch_stats=batch_stats,
            opt_state=tx.init(params),
            tx=tx,
        )

    def apply_gradients(self, grads, batch_stats) -> "TrainState":
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            step=self.step + 1,
            params=optax.apply_updates(self.params, updates),
            batch_stats=batch_stats,
            opt_state=opt_state,
        )

    @property
    def variables(self) -> dict:
        return {"params": self.params, "batch_stats": self.batch_stats}
