"""The GPU check (``scripts/gpu_check``): everything that needs a GPU, prepared to run in one call on a lent machine.

``__main__`` is the driver (parts, budgets, report); ``parts`` says what each part runs; ``runner`` starts child
processes under time limits; ``preflight``, ``parity``, ``throughput_part`` (with ``mixed_precision``'s bf16 rows)
and ``train_run`` are the children; ``report`` writes the Markdown; ``wheelhouse`` fetches and installs the wheels
the machine lacks. BENCHMARKS.md, "GPU check", says how to run it.
"""
