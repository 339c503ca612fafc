"""Test accuracy of a classifier, over the whole test set in fixed batches."""

import numpy as np
import tensorflow as tf

from tfrnn.config import EVAL_BATCH


def predictor(model):
    """`model(x, training=False)` as one traced function (no AutoGraph: the
    call has no tensor-dependent Python control flow)."""
    return tf.function(lambda x: model(x, training=False), autograph=False)


def accuracy(predict, x_test, y_test, batch_size=EVAL_BATCH):
    """The fraction of `x_test` whose most probable class under `predict` is
    its label in `y_test`; `predict` sees batches of `batch_size` rows."""
    correct = 0
    for start in range(0, len(x_test), batch_size):
        probabilities = predict(tf.constant(x_test[start : start + batch_size]))
        labels = y_test[start : start + batch_size]
        correct += int(np.sum(np.argmax(probabilities, -1) == labels))
    return correct / len(x_test)
