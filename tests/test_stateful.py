"""`tfrnn.RNN(stateful=True)` against `keras.layers.RNN(stateful=True)`: the
state carried over consecutive calls, values and gradients, `reset_states`."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn

B, T, F, H = 3, 5, 4, 6
CELLS = {
    "lstm": lambda: keras.layers.LSTMCell(H),
    "gru": lambda: keras.layers.GRUCell(H),
    "stack": lambda: keras.layers.StackedRNNCells(
        [keras.layers.LSTMCell(H), keras.layers.SimpleRNNCell(H)]),
}  # fmt: skip


def pair(cell_name, unroll):
    """A tfrnn and a Keras stateful layer on cells with the same weights."""
    chunks = [tf.constant(np.random.default_rng(i).normal(size=(B, T, F)), tf.float32)
              for i in range(3)]  # fmt: skip
    ours = tfrnn.RNN(CELLS[cell_name](), unroll=unroll, stateful=True, return_sequences=True)
    theirs = keras.layers.RNN(CELLS[cell_name](), stateful=True, return_sequences=True)
    for layer in (ours, theirs):
        layer(chunks[0])  # built
    theirs.cell.set_weights(ours.cell.get_weights())
    ours.reset_states()
    for leaf in tf.nest.flatten(theirs.states):  # Keras's reset_states fails on a stack's
        leaf.assign(tf.zeros_like(leaf))
    return ours, theirs, chunks


@pytest.mark.parametrize("unroll", ["dynamic", "static", 2])
@pytest.mark.parametrize("cell_name", list(CELLS))
def test_consecutive_calls_carry_the_state_as_keras_does(cell_name, unroll):
    ours, theirs, chunks = pair(cell_name, unroll)
    first = None
    for chunk in chunks:
        with tf.GradientTape(persistent=True) as tape:
            mine, keras_ = ours(chunk), theirs(chunk)
            losses = [tf.reduce_sum(tf.square(y)) for y in (mine, keras_)]
        np.testing.assert_allclose(mine, keras_, atol=1e-6)
        gradients = [tape.gradient(loss, layer.cell.trainable_variables)
                     for loss, layer in zip(losses, (ours, theirs))]  # fmt: skip
        for g_ours, g_keras in zip(*gradients):
            np.testing.assert_allclose(g_ours, g_keras, atol=1e-5)
        first = mine if first is None else first
        for leaf, keras_leaf in zip(ours.states, tf.nest.flatten(theirs.states)):
            np.testing.assert_allclose(leaf, keras_leaf, atol=1e-6)
    assert not np.allclose(ours(chunks[0]), first, atol=1e-3)  # the state was carried
    ours.reset_states()
    np.testing.assert_allclose(ours(chunks[0]), first, atol=1e-6)


def test_stateful_in_a_model_trains_with_fit_and_saves():
    model = keras.Sequential([
        keras.Input(batch_shape=(B, T, F)),
        tfrnn.RNN(keras.layers.GRUCell(H), stateful=True),
        keras.layers.Dense(1),
    ])  # fmt: skip
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(2 * B, T, F)).astype("float32")
    model.fit(x, np.ones((2 * B, 1)), batch_size=B, shuffle=False, epochs=1, verbose=0)
    layer = model.layers[0]
    assert not np.allclose(layer.states[0], 0.0)
    config = layer.get_config()
    assert config["stateful"] and tfrnn.RNN.from_config(config).stateful
    assert len(model.weights) == 3 + 2  # GRU kernels and bias, Dense: no state variables


def test_stateful_needs_a_fixed_batch_size():
    with pytest.raises(ValueError, match=r"batch_shape=\(B, T, features\)"):
        keras.Sequential([keras.Input((T, F)), tfrnn.RNN(keras.layers.GRUCell(H), stateful=True)])
