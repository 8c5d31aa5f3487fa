"""Dense contrastive feature learning on synthetic homography pairs: the Foundation's end-to-end task.

A ResNet trunk learns features such that each cell of view A picks out, among all cells of view B, the one
its known homography maps it to. It exercises every part of the harness (tf.data synthesis, BatchNorm
state, sharded steps, Orbax resume, evals) on the embedded scikit-image photographs, with no downloads.

Modules:
  model.py    ``DenseEncoder``: ResNet trunk -> 1×1 projection -> unit-norm cell embeddings
  losses.py   cell-classification InfoNCE: each A cell picks out its true B cell
  data.py     training pairs: a photograph crop and a homography-warped, recoloured view, with cell targets
  task.py     the ``dense_contrast`` training task (step, input pipeline, evaluation)
"""
