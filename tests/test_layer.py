"""tfrnn.RNN == keras.layers.RNN under masks, == tfrnn.dynamic_rnn with lengths.

The reference is Keras's own layer on the same cell object (so the same
weights): `keras.layers.RNN(cell, return_sequences=True, return_state=True,
zero_output_for_mask=True)` follows tfrnn's rule (a masked step outputs zeros
and copies the state through); for `return_sequences=False` Keras's default
(`zero_output_for_mask=False`) returns each row's last valid output, which is
what tfrnn.RNN returns too. Masks are random, with an all-True and an
all-False row. Forward values and gradients agree to 1e-6 of their scale
(max |a - b| <= 1e-6 * max(1, max |b|)), over every cell type and the three
unroll kinds.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import random_inputs

B, T, F, H = 4, 6, 3, 5
UNROLL_KINDS = ["dynamic", "static", 4]  # 4: a loop over blocks of 4 (T=6: 4 + 2)

CELLS = {
    "vanilla": lambda: keras.layers.SimpleRNNCell(H),
    "gru": lambda: keras.layers.GRUCell(H),
    "keras-lstm": lambda: keras.layers.LSTMCell(H),
    "tfrnn-lstm": lambda: tfrnn.LSTMCell(
        H, use_peepholes=True, cell_clip=0.5, num_proj=4, proj_clip=0.3
    ),
    "tfrnn-stack": lambda: tfrnn.MultiRNNCell(
        [tfrnn.LSTMCell(H), keras.layers.GRUCell(3)]
    ),
    "keras-stack": lambda: keras.layers.StackedRNNCells(
        [keras.layers.SimpleRNNCell(H), keras.layers.LSTMCell(3)]
    ),
}


def random_mask(seed=0, batch=B, time=T):
    """Random steps on and off; row 0 all on, row 1 all off, and at least one
    row with a valid step after a masked one (not a right-padded mask)."""
    mask = np.random.default_rng(seed).random((batch, time)) < 0.6
    mask[0], mask[1] = True, False
    assert np.any(~mask[:, :-1] & mask[:, 1:])
    return tf.constant(mask)


def assert_close(actual, expected, tol=1e-6):
    """Same number of tensors, same shapes, max |a - e| <= tol * max(1, |e|)."""
    assert len(tf.nest.flatten(actual)) == len(tf.nest.flatten(expected))
    for a, e in zip(tf.nest.flatten(actual), tf.nest.flatten(expected)):
        a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
        assert a.shape == e.shape
        scale = max(1.0, float(np.max(np.abs(e), initial=0.0)))
        assert np.max(np.abs(a - e), initial=0.0) <= tol * scale


def run_with_gradients(layer, cell, inputs, **call_kwargs):
    """`(results, d sum(results) / d [inputs, *cell weights])`."""
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        results = layer(inputs, **call_kwargs)
        loss = tf.add_n([tf.reduce_sum(r) for r in tf.nest.flatten(results)])
    return results, tape.gradient(loss, [inputs, *cell.trainable_variables])


@pytest.mark.parametrize("unroll", UNROLL_KINDS)
@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backward"])
def test_sequences_and_states_equal_keras_zero_output_for_mask(
    name, unroll, go_backwards
):
    cell = CELLS[name]()
    inputs, mask = random_inputs(B, T, F), random_mask()
    flags = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    ours = tfrnn.RNN(cell, unroll=unroll, **flags)
    theirs = keras.layers.RNN(cell, zero_output_for_mask=True, **flags)
    got, got_grads = run_with_gradients(ours, cell, inputs, mask=mask)
    want, want_grads = run_with_gradients(theirs, cell, inputs, mask=mask)
    assert len(got) == len(want)  # [output, *states] as Keras lists them
    assert_close(got, want)
    assert_close(got_grads, want_grads)


@pytest.mark.parametrize("unroll", UNROLL_KINDS)
@pytest.mark.parametrize("name", ["gru", "keras-lstm", "tfrnn-stack"])
def test_last_valid_output_equals_keras_default(name, unroll):
    """`return_sequences=False`: each row's output at its last unmasked step
    (zeros for a row with none), as Keras's default layer returns."""
    cell = CELLS[name]()
    inputs, mask = random_inputs(B, T, F, seed=1), random_mask(seed=1)
    ours = tfrnn.RNN(cell, unroll=unroll, return_state=True)
    theirs = keras.layers.RNN(cell, return_state=True)
    got, got_grads = run_with_gradients(ours, cell, inputs, mask=mask)
    want, want_grads = run_with_gradients(theirs, cell, inputs, mask=mask)
    assert_close(got, want)
    assert_close(got_grads, want_grads)
    assert np.all(got[0].numpy()[1] == 0.0)  # the all-masked row


def test_what_keras_casts_is_refused_and_the_named_cast_gives_keras_result():
    """keras.layers.RNN casts an int or float mask to bool (0.2 counts as
    True) and its cells promote int inputs to floats; tfrnn.RNN refuses both
    (as the functions do, tests/test_mask.py, test_errors.py), and the cast
    its message names gives Keras's result."""
    cell = CELLS["gru"]()
    inputs = tf.constant(np.random.default_rng(2).integers(-3, 4, (B, T, F)), tf.int32)
    mask = tf.where(random_mask(seed=2), 0.2, 0.0)
    flags = dict(return_sequences=True, return_state=True)
    ours = tfrnn.RNN(cell, **flags)
    theirs = keras.layers.RNN(cell, zero_output_for_mask=True, **flags)
    floats = tf.cast(inputs, tf.float32)
    refused = r"tfrnn\.RNN: mask must be bool.*tf\.cast\(mask, tf\.bool\)"
    for mask_ in (mask, tf.cast(mask * 10, tf.int32)):  # 0.2 and 2 count as True
        with pytest.raises(TypeError, match=refused):
            ours(floats, mask=mask_)
        assert_close(ours(floats, mask=tf.cast(mask_, tf.bool)), theirs(floats, mask=mask_))
    refused = r"tfrnn\.RNN: inputs must be floating point; got int32"
    with pytest.raises(TypeError, match=refused):
        ours(inputs)
    assert_close(ours(floats), theirs(inputs))


@pytest.mark.parametrize("unroll", UNROLL_KINDS)
def test_right_padded_mask_equals_sequence_length(unroll):
    """A right-padded mask, `sequence_length=` and `tfrnn.dynamic_rnn` with
    `sequence_length` give the same sequences and final state; the last
    valid output of an LSTM is its final `h`."""
    cell = keras.layers.LSTMCell(H)
    inputs, lengths = random_inputs(B, T, F, seed=2), tf.constant([T, 0, 2, 5])
    mask = tf.sequence_mask(lengths, T)
    want_outputs, (want_h, want_c) = tfrnn.dynamic_rnn(
        cell, inputs, sequence_length=lengths
    )
    layer = tfrnn.RNN(cell, unroll=unroll, return_sequences=True, return_state=True)
    for got in (layer(inputs, mask=mask), layer(inputs, sequence_length=lengths)):
        assert_close(got, [want_outputs, want_h, want_c])
    last_layer = tfrnn.RNN(cell, unroll=unroll)
    assert_close(last_layer(inputs, mask=mask), want_h)
    assert_close(last_layer(inputs, sequence_length=lengths), want_h)


@pytest.mark.parametrize("unroll", ["dynamic", "static"])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backward"])
def test_lengths_with_a_mask_or_backwards_are_a_mask(unroll, go_backwards):
    """`sequence_length` with a mask is their intersection; read backwards,
    lengths are the mask they stand for, reversed as Keras reverses masks."""
    cell = keras.layers.GRUCell(H)
    inputs, mask = random_inputs(B, T, F, seed=3), random_mask(seed=3)
    lengths = tf.constant([4, 6, 1, 3])
    flags = dict(return_sequences=True, go_backwards=go_backwards)
    layer = tfrnn.RNN(cell, unroll=unroll, **flags)
    keras_layer = keras.layers.RNN(cell, zero_output_for_mask=True, **flags)
    length_mask = tf.sequence_mask(lengths, T)
    assert_close(
        layer(inputs, mask=mask, sequence_length=lengths),
        keras_layer(inputs, mask=mask & length_mask),
    )
    assert_close(
        layer(inputs, sequence_length=lengths), keras_layer(inputs, mask=length_mask)
    )


@pytest.mark.parametrize("go_backwards", [False, True], ids=["forward", "backward"])
def test_lengths_are_checked_in_either_direction(go_backwards):
    """Read backwards, lengths become a mask in the layer, checked as the
    unroll checks them forwards: none outside [0, T], one per sequence."""
    layer = tfrnn.RNN(keras.layers.GRUCell(H), go_backwards=go_backwards)
    inputs = random_inputs(B, T, F)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be <= the number"):
        layer(inputs, sequence_length=tf.constant([T + 1, 1, 1, 1]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be >= 0"):
        layer(inputs, sequence_length=tf.constant([-1, 1, 1, 1]))
    with pytest.raises(ValueError, match="3 entries for a batch of 4"):
        layer(inputs, sequence_length=tf.constant([1, 1, 1]))


@pytest.mark.parametrize("unroll", UNROLL_KINDS)
def test_every_steps_state(unroll):
    """`return_all_states`: `[output, *states, *all_states]`; each step's state
    is the one Keras's layer ends in after that many steps (the state copied
    through at masked steps), and the last equals the final state."""
    cell = keras.layers.LSTMCell(H)
    inputs, mask = random_inputs(B, T, F, seed=4), random_mask(seed=4)
    layer = tfrnn.RNN(
        cell, unroll=unroll, return_state=True, return_all_states=True
    )
    _, h, c, all_h, all_c = layer(inputs, mask=mask)
    assert all_h.shape == (B, T, H) and all_c.shape == (B, T, H)
    keras_layer = keras.layers.RNN(cell, return_state=True)
    for t in (0, 2, T - 1):
        _, want_h, want_c = keras_layer(inputs[:, : t + 1], mask=mask[:, : t + 1])
        assert_close([all_h[:, t], all_c[:, t]], [want_h, want_c])
    assert_close([all_h[:, -1], all_c[:, -1]], [h, c])


def test_time_major_equals_batch_major():
    cell = keras.layers.GRUCell(H)
    inputs, mask = random_inputs(B, T, F, seed=5), random_mask(seed=5)
    flags = dict(return_sequences=True, return_state=True, return_all_states=True)
    batch_major = tfrnn.RNN(cell, **flags)(inputs, mask=mask)
    time_major = tfrnn.RNN(cell, time_major=True, **flags)(
        tf.transpose(inputs, [1, 0, 2]), mask=mask
    )
    swap = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    assert_close(
        [swap(time_major[0]), time_major[1], swap(time_major[2])], batch_major
    )


def test_initial_state_is_used_and_checked():
    cell = keras.layers.LSTMCell(H)
    inputs = random_inputs(B, T, F, seed=6)
    h0, c0 = (tf.random.normal([B, H], seed=s) for s in (1, 2))
    layer = tfrnn.RNN(cell, return_state=True)
    got = layer(inputs, initial_state=[h0, c0])
    want = keras.layers.RNN(cell, return_state=True)(inputs, initial_state=[h0, c0])
    assert_close(got, want)
    with pytest.raises(ValueError, match="initial_state holds 1 tensors .* has 2"):
        layer(inputs, initial_state=[h0])


def test_output_mask_propagates_only_with_sequences():
    inputs, mask = random_inputs(B, T, F), random_mask()
    cell = keras.layers.GRUCell(H)
    sequences = tfrnn.RNN(cell, return_sequences=True)(inputs, mask=mask)
    assert np.array_equal(sequences._keras_mask.numpy(), mask.numpy())
    backwards = tfrnn.RNN(cell, return_sequences=True, go_backwards=True)
    reversed_mask = backwards(inputs, mask=mask)._keras_mask
    assert np.array_equal(reversed_mask.numpy(), mask.numpy()[:, ::-1])
    last = tfrnn.RNN(cell)(inputs, mask=mask)
    assert getattr(last, "_keras_mask", None) is None


def test_static_layer_refuses_another_length():
    layer = tfrnn.RNN(keras.layers.GRUCell(H), unroll="static")
    layer(random_inputs(B, T, F))
    with pytest.raises(ValueError, match=f"built for T={T} time steps and got T=4"):
        layer(random_inputs(B, 4, F))
    with pytest.raises(ValueError, match="needs the number of time steps"):
        static = tfrnn.RNN(keras.layers.GRUCell(H), unroll="static")
        keras.Sequential([keras.Input((None, F)), static])


def test_dynamic_layer_takes_any_length():
    layer = tfrnn.RNN(keras.layers.GRUCell(H), unroll="dynamic")
    assert layer(random_inputs(B, T, F)).shape == (B, H)
    assert layer(random_inputs(B, 9, F)).shape == (B, H)


@pytest.mark.parametrize(
    "unroll, message",
    [
        (True, "unroll='static' \\(Keras's True\\)"),
        (0, "int k >= 1"),
        ("partial", "'dynamic', 'static' or an int k"),
    ],
)
def test_bad_unroll_is_refused_with_the_fix(unroll, message):
    with pytest.raises(ValueError, match=message):
        tfrnn.RNN(keras.layers.GRUCell(H), unroll=unroll)


def test_a_layer_is_not_a_cell():
    with pytest.raises(TypeError, match="pass a cell instead.* keras.layers.GRUCell"):
        tfrnn.RNN(keras.layers.GRU(H))
    with pytest.raises(TypeError, match="must be an RNN cell"):
        tfrnn.RNN(keras.layers.Dense(H))
