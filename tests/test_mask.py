"""`mask=`: any pattern of masked steps, honoured per step with tfrnn's rule
(zeros out, state copied through), against Keras's own `RNN` with the same
mask, in all three unrolls (static, dynamic, dynamic with unroll=3).

Keras's `RNN(..., zero_output_for_mask=True)` applies the same rule at each
step, so outputs, final states and gradients must agree. For
`return_sequences=False`, Keras's default (`zero_output_for_mask=False`)
returns each row's last valid output, which is what tfrnn returns.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built, random_inputs
from test_unroll import CELLS as UNROLL_CELLS
from test_unroll import assert_same, leaves_and_gradients

B, T, F, H = 4, 7, 3, 5

# test_unroll.py's cells but dropout, whose masks Keras's RNN would draw otherwise.
CELLS = {name: make for name, make in UNROLL_CELLS.items() if name != "dropout"}


def random_mask(seed=0):
    """Arbitrary holes, plus a row with none valid and one starting masked."""
    mask = np.random.default_rng(seed).random((B, T)) > 0.4
    mask[1] = False
    mask[2, :2] = False
    mask[2, 3] = True
    return tf.constant(mask)


def tfrnn_run(fn, in_function=False, **options):
    def run(cell, inputs, mask, return_sequences=True):
        def call(x, m):
            return fn(cell, x, mask=m, return_sequences=return_sequences, **options)

        return (tf.function(call) if in_function else call)(inputs, mask)

    return run


def keras_run(cell, inputs, mask, return_sequences=True):
    """Keras's `RNN`: zero outputs at masked steps with return_sequences,
    its default (the last valid output) without."""
    layer = keras.layers.RNN(
        cell,
        return_sequences=return_sequences,
        return_state=True,
        zero_output_for_mask=return_sequences,
    )
    outputs, *state = layer(inputs, mask=mask)
    return outputs, tf.nest.pack_sequence_as(cell.state_size, tf.nest.flatten(state))


UNROLLS = {
    "static": tfrnn_run(tfrnn.static_rnn),
    "dynamic": tfrnn_run(tfrnn.dynamic_rnn),
    "dynamic-unroll-3": tfrnn_run(tfrnn.dynamic_rnn, unroll=3),
}


def results(run, cell, inputs, mask, return_sequences=True):
    """Outputs, final state, and d loss / d (inputs, weights) of a fixed loss."""
    return leaves_and_gradients(
        lambda: run(cell, inputs, mask, return_sequences), cell, inputs
    )


@pytest.mark.parametrize("cell_name", list(CELLS))
def test_masks_match_keras_rnn(cell_name):
    cell = built(CELLS[cell_name](), F)
    inputs, mask = random_inputs(B, T, F, seed=1), random_mask()
    expected = results(keras_run, cell, inputs, mask)
    assert np.all(np.asarray(expected[0])[1] == 0)  # the row with no valid step
    for name, run in UNROLLS.items():
        assert_same(results(run, cell, inputs, mask), expected, name)


@pytest.mark.parametrize("cell_name", ["gru", "multi"])
def test_last_valid_output_matches_keras_default(cell_name):
    cell = built(CELLS[cell_name](), F)
    inputs, mask = random_inputs(B, T, F, seed=2), random_mask(seed=2)
    expected = results(keras_run, cell, inputs, mask, return_sequences=False)
    # Rows whose last step is masked but not every step: outputs[:, -1] would
    # be zeros there, their last valid output is not.
    rows = ~np.asarray(mask)[:, -1] & np.asarray(mask).any(1)
    assert rows.any() and np.all(np.abs(np.asarray(expected[0])[rows]) > 0)
    for name, run in UNROLLS.items():
        got = results(run, cell, inputs, mask, return_sequences=False)
        assert_same(got, expected, name)


def test_masks_in_tf_function_and_xla():
    cell = built(CELLS["keras-lstm"](), F)
    inputs, mask = random_inputs(B, T, F, seed=3), random_mask(seed=3)
    expected = results(keras_run, cell, inputs, mask)
    for fn, options in (
        (tfrnn.static_rnn, {}),
        (tfrnn.dynamic_rnn, {}),
        (tfrnn.dynamic_rnn, {"unroll": 3}),
    ):
        run = tfrnn_run(fn, in_function=True, **options)
        assert_same(results(run, cell, inputs, mask), expected, f"{fn.__name__}")
    compiled = tf.function(
        lambda x, m: tfrnn.dynamic_rnn(cell, x, mask=m, unroll=3), jit_compile=True
    )
    outputs, _ = compiled(inputs, mask)
    np.testing.assert_allclose(outputs, expected[0], atol=1e-5)


@pytest.mark.parametrize("unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn])
def test_right_padded_mask_equals_sequence_length(unroll):
    cell = built(CELLS["peephole-lstm"](), F)
    inputs, lengths = random_inputs(B, T, F, seed=4), [T, 0, 3, 5]
    by_mask = unroll(
        cell, inputs, mask=tf.sequence_mask(lengths, T), return_all_states=True
    )
    by_lengths = unroll(cell, inputs, sequence_length=lengths, return_all_states=True)
    for a, b in zip(tf.nest.flatten(by_mask), tf.nest.flatten(by_lengths)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn])
def test_mask_and_lengths_count_where_both_do(unroll):
    cell = built(CELLS["gru"](), F)
    inputs, mask, lengths = random_inputs(B, T, F, seed=5), random_mask(5), [2, 7, 5, 0]
    both = unroll(cell, inputs, mask=mask, sequence_length=lengths)
    combined = tf.logical_and(mask, tf.sequence_mask(lengths, T))
    expected = unroll(cell, inputs, mask=combined)
    for a, b in zip(tf.nest.flatten(both), tf.nest.flatten(expected)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn])
def test_time_major_mask_is_time_by_batch(unroll):
    cell = built(CELLS["gru"](), F)
    inputs, mask = random_inputs(B, T, F, seed=6), random_mask(6)
    expected, state = unroll(cell, inputs, mask=mask)
    outputs, state_tm = unroll(
        cell,
        tf.transpose(inputs, [1, 0, 2]),
        mask=tf.transpose(mask),
        time_major=True,
    )
    np.testing.assert_array_equal(tf.transpose(outputs, [1, 0, 2]), expected)
    np.testing.assert_array_equal(state_tm, state)


def layer(cell, inputs, mask):
    return tfrnn.RNN(cell, return_sequences=True)(inputs, mask=mask)


@pytest.mark.parametrize(
    "unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn, layer], ids=["static", "dynamic", "layer"]
)
@pytest.mark.parametrize(
    "mask, error, message",
    [
        (
            tf.fill([B, T], 0.2),
            TypeError,
            r"mask must be bool, True where a step counts; got float32\. Convert "
            r"it, e\.g\. tf\.cast\(mask, tf\.bool\) \(any nonzero value counts",
        ),
        (tf.ones([B, T], tf.int32), TypeError, r"mask must be bool.*got int32"),
        (tf.ones([B, T, 1], tf.bool), ValueError, r"mask must be \[batch, time\]"),
        (
            tf.ones([T, B], tf.bool),
            ValueError,
            r"mask has shape \(7, 4\) for inputs of \[batch, time\] = \[4, 7\]",
        ),
    ],
    ids=["float", "int", "rank-3", "time-major-for-batch-major"],
)
def test_bad_masks_are_refused(unroll, mask, error, message):
    """By the layer as by the functions: keras.layers.RNN casts any mask to
    bool, 0.2 counting as True (test_layer.py); tfrnn asks for the cast."""
    cell = built(CELLS["gru"](), F)
    with pytest.raises(error, match=message):
        unroll(cell, tf.ones([B, T, F]), mask=mask)
