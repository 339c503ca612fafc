"""Shared fixtures: quiet TF logs, seeds, and the four ways to run an unroll."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfrnn  # noqa: E402

UNROLLS = {"static": tfrnn.static_rnn, "dynamic": tfrnn.dynamic_rnn}
WAYS = [(kind, execution) for kind in UNROLLS for execution in ("eager", "function")]


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


@pytest.fixture(params=WAYS, ids=[f"{k}-{e}" for k, e in WAYS])
def unroll(request):
    """`unroll(cell, inputs, **kwargs)` in one of {static, dynamic} x {eager, tf.function}.

    The cell must already be built (variables are created eagerly).
    """
    kind, execution = request.param
    fn = UNROLLS[kind]
    if execution == "eager":
        return fn
    return lambda cell, inputs, **kwargs: tf.function(lambda x: fn(cell, x, **kwargs))(
        inputs
    )


def built(cell, features):
    """`cell`, built for `features` inputs by one eager call."""
    state = tfrnn.zero_state(cell, 1)
    cell(tf.zeros([1, features]), state)
    return cell


def random_inputs(batch, time, features, seed=0):
    return tf.constant(
        np.random.default_rng(seed).normal(size=(batch, time, features)), tf.float32
    )
