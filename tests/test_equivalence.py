"""static_rnn == dynamic_rnn == a plain Python loop == keras.layers.RNN.

Forward values and gradients, to 1e-6 in float32 (of the tensor's scale:
max |a - b| <= 1e-6 * max(1, max |b|); gradients reach ~20, where one float32
ulp is 2e-6), over cells, T in
{1, 5, 28} and lengths including 0 and T. The Python-loop reference runs each
row alone for exactly its own length, so it checks the padding rule without
sharing any masking code with tfrnn.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built, random_inputs

B, F, H = 4, 3, 5

CELLS = {
    "vanilla": lambda: keras.layers.SimpleRNNCell(H),
    "gru": lambda: keras.layers.GRUCell(H),
    "keras-lstm": lambda: keras.layers.LSTMCell(H),
    "peephole-lstm": lambda: tfrnn.LSTMCell(
        H, use_peepholes=True, cell_clip=0.5, num_proj=4, proj_clip=0.3
    ),
    "multi": lambda: tfrnn.MultiRNNCell([tfrnn.LSTMCell(H), keras.layers.GRUCell(H)]),
    "keras-stacked": lambda: keras.layers.StackedRNNCells(
        [keras.layers.SimpleRNNCell(H), keras.layers.LSTMCell(H)]
    ),
}


def lengths_for(time):
    return [time, 0, max(1, time // 2), max(1, time - 1)]


def python_loop(cell, inputs, lengths):
    """Each row alone, `lengths[b]` steps of `cell`, outputs padded with zeros."""
    outputs, states = [], []
    lengths = lengths or [inputs.shape[1]] * inputs.shape[0]
    for b, length in enumerate(lengths):
        state = tfrnn.zero_state(cell, 1)
        row = []
        for t in range(length):
            output, state = cell(inputs[b : b + 1, t], state)
            row.append(output[0])
        width = tfrnn.step.output_size(cell)
        row += [tf.zeros([width])] * (inputs.shape[1] - length)
        outputs.append(tf.stack(row))
        states.append(state)
    final_state = tf.nest.map_structure(lambda *rows: tf.concat(rows, 0), *states)
    return tf.stack(outputs), final_state


def keras_rnn(unroll):
    def run(cell, inputs, lengths):
        del lengths  # Keras's mask rule differs from TF1's: compare unpadded only
        layer = keras.layers.RNN(
            cell, return_sequences=True, return_state=True, unroll=unroll
        )
        outputs, *state = layer(inputs)
        return outputs, tf.nest.pack_sequence_as(
            cell.state_size, tf.nest.flatten(state)
        )

    return run


def tfrnn_run(fn, in_function):
    def run(cell, inputs, lengths):
        def call(x):
            return fn(cell, x, sequence_length=lengths)

        return (tf.function(call) if in_function else call)(inputs)

    return run


REFERENCES = {
    "python-loop": python_loop,
    "keras-unroll": keras_rnn(True),
    "keras-while": keras_rnn(False),
}
UNDER_TEST = {
    "static-eager": tfrnn_run(tfrnn.static_rnn, False),
    "static-function": tfrnn_run(tfrnn.static_rnn, True),
    "dynamic-eager": tfrnn_run(tfrnn.dynamic_rnn, False),
    "dynamic-function": tfrnn_run(tfrnn.dynamic_rnn, True),
}


def values_and_gradients(run, cell, inputs, lengths):
    """Outputs, final state, and d loss / d (inputs, weights) of a fixed loss."""
    rng = np.random.default_rng(7)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs, state = run(cell, inputs, lengths)
        loss = tf.reduce_sum(outputs * rng.normal(size=outputs.shape))
        for leaf in tf.nest.flatten(state):
            loss += tf.reduce_sum(leaf * rng.normal(size=leaf.shape))
    grads = tape.gradient(loss, [inputs] + cell.trainable_variables)
    return [outputs] + tf.nest.flatten(state) + grads


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("time", [1, 5, 28])
@pytest.mark.parametrize("cell_name", list(CELLS))
def test_unrolls_match_references(cell_name, time, padded):
    cell = built(CELLS[cell_name](), F)
    inputs = random_inputs(B, time, F, seed=time)
    lengths = lengths_for(time) if padded else None
    references = {"python-loop": python_loop} if padded else REFERENCES
    expected = values_and_gradients(python_loop, cell, inputs, lengths)
    if cell_name == "peephole-lstm" and time > 1 and not padded:  # clips active
        outputs, _, c = expected[:3]
        assert np.max(np.abs(outputs)) == pytest.approx(0.3)
        assert np.max(np.abs(c)) == pytest.approx(0.5)
    for name, run in {**references, **UNDER_TEST}.items():
        got = values_and_gradients(run, cell, inputs, lengths)
        assert len(got) == len(expected)
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_close(a, b, f"{name}, value {i}")


def assert_close(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, what
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    assert np.max(np.abs(a - b), initial=0.0) <= 1e-6 * scale, what
