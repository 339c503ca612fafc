"""Output versus state: what the final state is, and is not, for each cell.

Every test runs four ways, {static, dynamic} x {eager, tf.function}, but the
last: the gradients of static_rnn's per-step tensors are the true dL/dh_t.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built, random_inputs

B, T, F, H = 4, 6, 3, 5

# Cells whose state is their last output.
SINGLE_LAYER_CELLS = pytest.mark.parametrize(
    "make_cell",
    [lambda: keras.layers.SimpleRNNCell(H), lambda: keras.layers.GRUCell(H)],
    ids=["vanilla", "gru"],
)


def assert_equal(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)


def assert_differs(a, b):
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) > 1e-3


@SINGLE_LAYER_CELLS
def test_single_layer_state_is_last_output(unroll, make_cell):
    cell = built(make_cell(), F)
    outputs, state = unroll(cell, random_inputs(B, T, F))
    assert outputs.shape == (B, T, H)
    assert state.shape == (B, H)
    assert_equal(state, outputs[:, -1, :])
    assert_differs(state, outputs[:, -2, :])


@pytest.mark.parametrize(
    "make_cell",
    [
        lambda: keras.layers.LSTMCell(H),
        lambda: tfrnn.LSTMCell(H),
    ],
    ids=["keras-lstm", "tfrnn-lstm"],
)
def test_lstm_h_is_last_output_but_c_is_not(unroll, make_cell):
    cell = built(make_cell(), F)
    outputs, (h, c) = unroll(cell, random_inputs(B, T, F))
    assert_equal(h, outputs[:, -1, :])
    assert_differs(c, outputs[:, -1, :])


@pytest.mark.parametrize(
    "make_stack",
    [
        lambda: keras.layers.StackedRNNCells(
            [keras.layers.GRUCell(H), keras.layers.GRUCell(H)]
        ),
        lambda: tfrnn.MultiRNNCell([tfrnn.LSTMCell(H), tfrnn.LSTMCell(H)]),
    ],
    ids=["keras-stacked-gru", "tfrnn-multi-lstm"],
)
def test_stack_only_top_layer_state_is_output(unroll, make_stack):
    cell = built(make_stack(), F)
    outputs, (lower, top) = unroll(cell, random_inputs(B, T, F))
    top_h, lower_h = tf.nest.flatten(top)[0], tf.nest.flatten(lower)[0]
    assert_equal(top_h, outputs[:, -1, :])
    assert_differs(lower_h, outputs[:, -1, :])


@SINGLE_LAYER_CELLS
def test_padded_rows_zero_outputs_and_state_at_length(unroll, make_cell):
    cell = built(make_cell(), F)
    lengths = [T, 0, 1, 3]
    outputs, state = unroll(cell, random_inputs(B, T, F), sequence_length=lengths)
    for b, length in enumerate(lengths):
        assert_equal(outputs[b, length:], np.zeros([T - length, H]))
        if length:
            assert_equal(state[b], outputs[b, length - 1])
            assert np.all(np.abs(outputs[b, :length]) > 0)
        else:  # length 0: the initial state
            assert_equal(state[b], np.zeros([H]))
    assert_differs(state[2], outputs[2, -1])  # the final state is not the last output


def test_padded_lstm_no_state_is_last_output(unroll):
    cell = built(tfrnn.LSTMCell(H), F)
    lengths = [T, 2, 4, 1]
    outputs, (h, c) = unroll(cell, random_inputs(B, T, F), sequence_length=lengths)
    for b, length in enumerate(lengths):
        assert_equal(h[b], outputs[b, length - 1])
        if length < T:
            assert_equal(outputs[b, -1], np.zeros([H]))
            assert_differs(h[b], outputs[b, -1])


def test_peephole_projection_h_is_output_c_has_cell_width(unroll):
    cell = built(tfrnn.LSTMCell(H, use_peepholes=True, num_proj=2, cell_clip=0.5), F)
    outputs, (h, c) = unroll(cell, random_inputs(B, T, F))
    assert outputs.shape == (B, T, 2)
    assert h.shape == (B, 2) and c.shape == (B, H)
    assert_equal(h, outputs[:, -1, :])
    assert np.max(np.abs(c)) <= 0.5 + 1e-7


@pytest.mark.parametrize("lengths", [None, [T, 0, 2, 5]], ids=["full", "padded"])
def test_all_states_are_the_step_states(unroll, lengths):
    cell = built(keras.layers.LSTMCell(H), F)
    outputs, (h, c), (all_h, all_c) = unroll(
        cell, random_inputs(B, T, F), sequence_length=lengths, return_all_states=True
    )
    assert all_h.shape == (B, T, H) and all_c.shape == (B, T, H)
    assert_equal(all_h[:, -1], h)
    assert_equal(all_c[:, -1], c)
    for b, length in enumerate(lengths or [T] * B):
        assert_equal(all_h[b, :length], outputs[b, :length])
        # past the end the state is copied through (the initial state for 0)
        assert_equal(all_h[b, length:], np.repeat(h[b : b + 1], T - length, 0))
    assert_differs(all_c[:, 2], all_c[:, 3])


@pytest.mark.parametrize(
    "lengths", [None, [T, 0, 2, 5], [1, 3, 0, 2]], ids=["full", "padded", "all-short"]
)
@pytest.mark.parametrize("time_major", [False, True], ids=["batch-major", "time-major"])
def test_last_output_only_is_each_rows_last_valid_output(unroll, lengths, time_major):
    """`return_sequences=False` gives each row's output at its last valid step,
    `outputs[b, length - 1]` (the LSTM's final `h`; zeros for length 0), not
    `outputs[:, -1]`, which is zeros for every padded row: values and
    gradients ("all-short": the dynamic loop stops early)."""
    cell = built(tfrnn.LSTMCell(H, use_peepholes=True), F)
    inputs = random_inputs(B, T, F)
    if time_major:
        inputs = tf.transpose(inputs, [1, 0, 2])
    row_lengths = lengths or [T] * B
    at_last_valid = [(max(n - 1, 0), b) for b, n in enumerate(row_lengths)]
    if not time_major:
        at_last_valid = [(b, t) for t, b in at_last_valid]
    with tf.GradientTape(persistent=True) as tape:
        outputs, state = unroll(
            cell, inputs, sequence_length=lengths, time_major=time_major
        )
        last, last_state = unroll(
            cell,
            inputs,
            sequence_length=lengths,
            time_major=time_major,
            return_sequences=False,
        )
        weights = tf.range(1.0, H + 1.0)  # so that each unit's gradient differs
        loss_all = tf.reduce_sum(tf.gather_nd(outputs, at_last_valid) * weights)
        loss_last = tf.reduce_sum(last * weights)
    assert last.shape == (B, H)
    assert_equal(last, tf.gather_nd(outputs, at_last_valid))
    assert_equal(last, state[0])  # the final h
    assert_equal(last_state[0], state[0])
    for row, length in enumerate(row_lengths):
        if length == 0:
            assert_equal(last[row], np.zeros([H]))
        else:
            assert np.all(np.abs(np.asarray(last[row])) > 0)
    variables = cell.trainable_variables
    for reference, gradient in zip(
        tape.gradient(loss_all, variables), tape.gradient(loss_last, variables)
    ):
        np.testing.assert_allclose(gradient, reference, rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(np.asarray(tape.gradient(loss_last, variables)[0]))) > 0



def perturbed_step(cell):
    """`step(x, state, eps) -> state`: one step of a plain loop that adds eps to
    the state it feeds on. For `tfrnn.LSTMCell` the step is written out, with
    eps_c added where c_t is made, so that dL/d eps_c counts c_t's path through
    h_t too (as dL/dc_t does)."""
    if not isinstance(cell, tfrnn.LSTMCell):
        return lambda x, state, eps: [
            s + e for s, e in zip(tf.nest.flatten(cell(x, state)[1]), eps)
        ]

    def lstm_step(x, state, eps):
        z = x @ cell.kernel + state[0] @ cell.recurrent_kernel + cell.bias
        i, f, j, o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(f + cell.forget_bias) * state[1] + tf.sigmoid(i) * tf.tanh(j)
        c += eps[1]
        return [tf.sigmoid(o) * tf.tanh(c) + eps[0], c]

    return lstm_step


@pytest.mark.parametrize(
    "make_cell",
    [keras.layers.SimpleRNNCell, keras.layers.GRUCell, tfrnn.LSTMCell],
    ids=["vanilla", "gru", "lstm"],
)
def test_static_list_outputs_carry_the_true_state_gradients(make_cell):
    """`static_rnn` in TF1's list form returns the tensors it feeds on, so
    `tape.gradient(loss, outputs[t])` is dL/dh_t through every later step, and
    that of its per-step states' c is dL/dc_t, as experiments/gradient_flow
    measures: equal to dL/d eps_t of a plain loop (`perturbed_step`, eps_t = 0).
    The stacked `[B, T, H]` tensors (`return_all_states`, outputs) are built
    after the fact: their gradient is not the true one."""
    cell = make_cell(H, dtype="float64")
    inputs = tf.cast(random_inputs(B, T, F), tf.float64)
    steps = tf.unstack(inputs, axis=1)
    tfrnn.static_rnn(cell, inputs[:, :1])  # builds the cell
    weights = tf.constant(np.random.default_rng(1).normal(size=[H]))
    loss_of = lambda h: tf.reduce_sum(tf.tanh(h) * weights)  # noqa: E731
    step, sizes = perturbed_step(cell), tf.nest.flatten(cell.state_size)
    eps = [[tf.zeros([B, n], tf.float64) for n in sizes] for _ in steps]
    with tf.GradientTape() as tape:  # the reference: a loop without tfrnn
        tape.watch(eps)
        state = [tf.zeros([B, n], tf.float64) for n in sizes]
        for step_input, step_eps in zip(steps, eps):
            state = step(step_input, state, step_eps)
        loss = loss_of(state[0])
    true = np.asarray(tape.gradient(loss, eps, unconnected_gradients="zero"))
    assert np.min(np.linalg.norm(true[:, :, 0], axis=-1)) > 0  # dL/dh_t, every t
    with tf.GradientTape(persistent=True) as tape:
        outputs, _, states = tfrnn.static_rnn(cell, steps, return_all_states=True)
        loss = loss_of(outputs[-1])
        stacked_outputs, _, stacked = tfrnn.static_rnn(cell, inputs, return_all_states=True)
        stacked_loss = loss_of(stacked_outputs[:, -1])
    targets = [[h] + tf.nest.flatten(s)[1:] for h, s in zip(outputs, states)]
    from_tape = tape.gradient(loss, targets, unconnected_gradients="zero")
    np.testing.assert_allclose(np.asarray(from_tape), true, rtol=1e-12, atol=1e-14)
    for tensor in (stacked_outputs, tf.nest.flatten(stacked)[0]):
        gradient = tape.gradient(stacked_loss, tensor, unconnected_gradients="zero")
        assert np.max(np.abs(np.transpose(gradient, [1, 0, 2]) - true[:, 0])) > 1e-3
