"""`tfrnn.bidirectional_dynamic_rnn` / `static_bidirectional_rnn` against a
plain Python loop over each row (the reference), in the four ways.

Reference, per row b of length L: the forward cell reads x[b, 0..L-1], the
backward cell x[b, L-1..0]; backward output t is the one produced on reading
x[b, t]; outputs past L are zeros in both directions; final states are those
after the last step read. (Equality with TF1's own: test_compat_tf1.py.)
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built, random_inputs

B, T, F = 4, 5, 3
LENGTHS = [5, 0, 2, 4]  # T and 0 included


def run_row(cell, x_row):
    """Steps `cell` over the [time, features] `x_row`; (outputs, state)."""
    state = tfrnn.zero_state(cell, 1)
    outputs = []
    for x_t in x_row:
        output, state = cell(x_t[tf.newaxis], state)
        outputs.append(output[0].numpy())
    return outputs, tf.nest.map_structure(lambda s: s[0].numpy(), state)


def reference(cell_fw, cell_bw, x, lengths):
    """((outputs_fw, outputs_bw), (states_fw, states_bw)) by the rule above."""
    x = x.numpy()
    outputs = {"fw": np.zeros((B, T, 3)), "bw": np.zeros((B, T, 2))}
    states = {"fw": [], "bw": []}
    for b, length in enumerate(lengths):
        forward, state_fw = run_row(cell_fw, x[b, :length])
        backward, state_bw = run_row(cell_bw, x[b, :length][::-1])
        if length:
            outputs["fw"][b, :length] = forward
            outputs["bw"][b, :length] = backward[::-1]
        states["fw"].append(state_fw)
        states["bw"].append(state_bw)
    stacked = {k: tf.nest.map_structure(lambda *rows: np.stack(rows), *v)
               for k, v in states.items()}
    return (outputs["fw"], outputs["bw"]), (stacked["fw"], stacked["bw"])


@pytest.fixture
def cells():
    return built(tfrnn.LSTMCell(3), F), built(keras.layers.GRUCell(2), F)


UNROLLS = {"dynamic": tfrnn.bidirectional_dynamic_rnn,
           "static": tfrnn.static_bidirectional_rnn}
WAYS = [(u, e) for u in UNROLLS for e in ("eager", "function")]


def call(unroll, execution, *args, **kwargs):
    fn = UNROLLS[unroll]
    if execution == "function":
        return tf.function(lambda *a: fn(*a, **kwargs))(*args)
    return fn(*args, **kwargs)


def assert_nested_close(actual, expected):
    tf.nest.map_structure(
        lambda a, e: np.testing.assert_allclose(np.asarray(a), e, atol=1e-6),
        actual, expected,
    )


@pytest.mark.parametrize("lengths", [LENGTHS, None], ids=["padded", "unpadded"])
@pytest.mark.parametrize("unroll,execution", WAYS, ids=[f"{u}-{e}" for u, e in WAYS])
def test_matches_per_row_loop(cells, unroll, execution, lengths):
    fw, bw = cells
    x = random_inputs(B, T, F)
    (out_fw, out_bw), (state_fw, state_bw) = call(
        unroll, execution, fw, bw, x, sequence_length=lengths
    )
    expected = reference(fw, bw, x, lengths or [T] * B)
    assert_nested_close(((out_fw, out_bw), (state_fw, state_bw)), expected)


@pytest.mark.parametrize("unroll", list(UNROLLS))
def test_time_major_and_all_states(cells, unroll):
    """Time-major inputs give the transposed outputs; every-step states come
    in forward time order, and the backward state at time 0 is its final."""
    fw, bw = cells
    x = random_inputs(B, T, F)
    (out_fw, out_bw), (state_fw, state_bw), (all_fw, all_bw) = UNROLLS[unroll](
        fw, bw, tf.transpose(x, [1, 0, 2]), sequence_length=LENGTHS,
        time_major=True, return_all_states=True,
    )
    (ref_fw, ref_bw), (ref_state_fw, ref_state_bw) = reference(fw, bw, x, LENGTHS)
    np.testing.assert_allclose(tf.transpose(out_fw, [1, 0, 2]), ref_fw, atol=1e-6)
    np.testing.assert_allclose(tf.transpose(out_bw, [1, 0, 2]), ref_bw, atol=1e-6)
    # the GRU's state after reading x[t..L-1] backwards is its output at t
    for b, length in enumerate(LENGTHS):
        np.testing.assert_allclose(all_bw[:length, b], ref_bw[b, :length], atol=1e-6)
        if length:
            np.testing.assert_allclose(all_bw[0, b], ref_state_bw[b], atol=1e-6)
        np.testing.assert_allclose(all_fw[0][-1, b], ref_state_fw[0][b], atol=1e-6)


def test_return_sequences_false_is_each_directions_last_valid_output(cells):
    """Forward: the output at the row's last step; backward: the output after
    reading the row back to time 0; zeros for a row of length 0."""
    fw, bw = cells
    x = random_inputs(B, T, F)
    (last_fw, last_bw), _ = tfrnn.bidirectional_dynamic_rnn(
        fw, bw, x, sequence_length=LENGTHS, return_sequences=False
    )
    (ref_fw, ref_bw), _ = reference(fw, bw, x, LENGTHS)
    for b, length in enumerate(LENGTHS):
        expected_fw = ref_fw[b, length - 1] if length else np.zeros(3)
        expected_bw = ref_bw[b, 0] if length else np.zeros(2)
        np.testing.assert_allclose(last_fw[b], expected_fw, atol=1e-6)
        np.testing.assert_allclose(last_bw[b], expected_bw, atol=1e-6)


def test_static_takes_tf1s_list_and_returns_lists(cells):
    fw, bw = cells
    x = random_inputs(B, T, F)
    (out_fw, out_bw), _ = tfrnn.static_bidirectional_rnn(
        fw, bw, tf.unstack(x, axis=1), sequence_length=LENGTHS
    )
    assert isinstance(out_bw, list) and len(out_bw) == T
    (ref_fw, ref_bw), _ = reference(fw, bw, x, LENGTHS)
    _, _, (_, all_bw) = tfrnn.static_bidirectional_rnn(
        fw, bw, tf.unstack(x, axis=1), sequence_length=LENGTHS, return_all_states=True
    )
    assert isinstance(all_bw, list) and len(all_bw) == T  # one GRU state per step
    for b, length in enumerate(LENGTHS):  # the GRU's state at t is its output at t
        for t in range(length):
            np.testing.assert_allclose(all_bw[t][b], ref_bw[b, t], atol=1e-6)
    np.testing.assert_allclose(np.stack(out_bw, 1), ref_bw, atol=1e-6)
    np.testing.assert_allclose(np.stack(out_fw, 1), ref_fw, atol=1e-6)


@pytest.mark.parametrize("unroll", [2, 5])
def test_dynamic_unroll_is_passed_to_both_directions(cells, unroll):
    """`unroll=k` (k steps per loop iteration; T=5 not a multiple of 2)
    changes the loop, not the result."""
    fw, bw = cells
    x = random_inputs(B, T, F)
    results = tfrnn.bidirectional_dynamic_rnn(
        fw, bw, x, sequence_length=LENGTHS, unroll=unroll
    )
    assert_nested_close(results, reference(fw, bw, x, LENGTHS))
