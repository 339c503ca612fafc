"""A classifier over the whole test set in fixed batches: its probabilities,
its accuracy."""

import numpy as np
import tensorflow as tf

from tfrnn.tasks.classify.config import EVAL_BATCH


def predictor(model):
    """`model(x, training=False)` as one traced function (no AutoGraph: the
    call has no tensor-dependent Python control flow)."""
    return tf.function(lambda x: model(x, training=False), autograph=False)


def probabilities(predict, x, batch_size=EVAL_BATCH):
    """`predict` over all of `x`, in batches of `batch_size` rows: float32
    class probabilities `[len(x), num_classes]`."""
    return np.concatenate(
        [
            np.asarray(predict(tf.constant(x[start : start + batch_size]))).astype(
                np.float32
            )
            for start in range(0, len(x), batch_size)
        ]
    )


def accuracy(predict, x_test, y_test, batch_size=EVAL_BATCH):
    """The fraction of `x_test` whose most probable class under `predict` is
    its label in `y_test`; `predict` sees batches of `batch_size` rows."""
    predicted = np.argmax(probabilities(predict, x_test, batch_size), -1)
    return int(np.sum(predicted == y_test)) / len(x_test)
