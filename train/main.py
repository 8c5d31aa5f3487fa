"""Training entry point: ``python -m train.main --config configs/<name>.py[:variant] --workdir DIR``.

Override any field: ``--config.total_steps=100 --config.optimizer.learning_rate=1e-3``.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from artdup_jax import xla_cpu
from artdup_jax.training import mesh as mesh_lib

xla_cpu.apply_training_defaults()  # before JAX starts a backend: faster conv gradients on CPU

_CONFIG = config_flags.DEFINE_config_file("config", None, "configs/<name>.py[:variant]", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "where checkpoints, metrics and the report go")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # Orbax logs every save step at INFO
    mesh_lib.maybe_initialize_distributed()  # before any other JAX call
    from artdup_jax.training import loop
    from train.tasks import get_task

    config = _CONFIG.value
    report = loop.train(config, _WORKDIR.value, get_task(config.task))
    print(f"done: {report['steps']} steps on {report['devices']} device(s) in {report['wall_seconds']} s; "
          f"report in {_WORKDIR.value}/report.json")


if __name__ == "__main__":
    app.run(main)
