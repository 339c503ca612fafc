"""Graph size and tracing: what static and dynamic unrolling cost in the graph."""

import keras
import numpy as np
import tensorflow as tf

import tfrnn
from conftest import built
from tfrnn.graphs import count_ops

F, H = 28, 8


def traced_ops(unroll, cell, time):
    fn = tf.function(lambda x: unroll(cell, x))
    return count_ops(fn.get_concrete_function(tf.TensorSpec([None, time, F])))


def test_dynamic_graph_does_not_grow_with_time_static_does():
    cell = built(keras.layers.LSTMCell(H), F)
    dynamic = [traced_ops(tfrnn.dynamic_rnn, cell, t) for t in (28, 784)]
    static = [traced_ops(tfrnn.static_rnn, cell, t) for t in (28, 112)]
    assert dynamic[0] == dynamic[1]
    assert static[1] > 3 * static[0]
    assert static[0] > dynamic[0]


def test_dynamic_serves_every_length_from_one_trace():
    cell = built(keras.layers.GRUCell(H), F)
    fn = tf.function(
        lambda x: tfrnn.dynamic_rnn(cell, x),
        input_signature=[tf.TensorSpec([None, None, F])],
    )
    for time in (3, 9, 1):
        outputs, state = fn(tf.ones([2, time, F]))
        assert outputs.shape == (2, time, H)
        np.testing.assert_allclose(state, outputs[:, -1])
    assert fn.experimental_get_tracing_count() == 1


def test_tf1_style_graph_and_session():
    # TF1 code migrates by swapping the import: placeholders, a session, feeds.
    with tf.Graph().as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 4, 1])
        lengths = tf.compat.v1.placeholder(tf.int32, [None])
        results = {}
        for name, unroll in (
            ("static", tfrnn.static_rnn),
            ("dynamic", tfrnn.dynamic_rnn),
        ):
            cell = keras.layers.SimpleRNNCell(
                1,
                activation=None,
                kernel_initializer="ones",
                recurrent_initializer="ones",
            )
            results[name] = unroll(
                cell, inputs, sequence_length=lengths, dtype=tf.float32
            )
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            feed = {inputs: np.ones([2, 4, 1]), lengths: [4, 2]}
            for name, (outputs, state) in results.items():
                outputs, state = session.run([outputs, state], feed)
                np.testing.assert_allclose(
                    outputs[..., 0], [[1, 2, 3, 4], [1, 2, 0, 0]]
                )
                np.testing.assert_allclose(state[:, 0], [4.0, 2.0])
            bad_feed = {inputs: np.ones([2, 4, 1]), lengths: [5, 2]}
            for name, (outputs, _) in results.items():
                try:
                    session.run(outputs, bad_feed)
                except tf.errors.InvalidArgumentError as error:
                    assert "must be <= the number of time steps" in error.message
                else:
                    raise AssertionError(f"{name}: a length of 5 for T=4 ran")
