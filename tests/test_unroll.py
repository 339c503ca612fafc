"""`dynamic_rnn(unroll=k)`: k steps per loop iteration, the same results as
`unroll=1` and as `static_rnn` (the k = T end), a graph that grows with k and
not with T, and one trace for every T.

`static_rnn` is the reference here because tests/test_equivalence.py checks it
against a plain Python loop and Keras's own `RNN`.
"""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built, random_inputs
from tfrnn.graphs import count_ops

B, T, F, H = 4, 10, 3, 5
UNROLLS = [1, 2, 3, 7, T, T + 3]  # 3 and 7 do not divide T; T + 3 > T

CELLS = {
    "vanilla": lambda: keras.layers.SimpleRNNCell(H),
    "gru": lambda: keras.layers.GRUCell(H),
    "keras-lstm": lambda: keras.layers.LSTMCell(H),
    "peephole-lstm": lambda: tfrnn.LSTMCell(H, use_peepholes=True, num_proj=4),
    "multi": lambda: tfrnn.MultiRNNCell([tfrnn.LSTMCell(H), keras.layers.GRUCell(H)]),
    "keras-stacked": lambda: keras.layers.StackedRNNCells(
        [keras.layers.SimpleRNNCell(H), keras.layers.LSTMCell(H)]
    ),
    # Dropout whose masks are drawn once per sequence, before the loop, so
    # that every unroll applies the same masks when the seeds are reset.
    "dropout": lambda: tfrnn.MultiRNNCell(
        [
            tfrnn.DropoutWrapper(
                tfrnn.LSTMCell(H),
                input_keep_prob=0.7,
                output_keep_prob=0.8,
                state_keep_prob=0.6,
                variational_recurrent=True,
                seed=3,
            ),
            keras.layers.GRUCell(H, dropout=0.3, recurrent_dropout=0.4, seed=5),
        ]
    ),
}
LENGTHS = {
    "full": None,
    "padded": [T, 0, 4, 7],  # the loop runs T steps
    "short": [5, 0, 3, 1],  # the loop stops after 5: not a multiple of 2, 3
}


def seeds_reset(cell):
    """A function that puts the cell's dropout seeds back to their values now,
    so that every run after it draws the same masks."""
    seeds = [v for v in cell.non_trainable_variables if "seed" in v.path]
    values = [v.numpy() for v in seeds]
    return lambda: [v.assign(value) for v, value in zip(seeds, values)]


def leaves_and_gradients(compute, cell, inputs):
    """The leaves of `compute()`, then d loss / d (inputs, weights) of a fixed
    random weighting of them (seeded: the same loss for every run)."""
    rng = np.random.default_rng(7)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        leaves = tf.nest.flatten(compute())
        loss = sum(tf.reduce_sum(leaf * rng.normal(size=leaf.shape)) for leaf in leaves)
    return leaves + tape.gradient(loss, [inputs] + cell.trainable_variables)


def results(fn, cell, inputs, reset_seeds=lambda: None, **kwargs):
    """Outputs, final and per-step states, and d loss / d (inputs, weights)."""
    reset_seeds()
    return leaves_and_gradients(
        lambda: fn(cell, inputs, return_all_states=True, **kwargs), cell, inputs
    )


def assert_same(got, expected, what):
    assert len(got) == len(expected), what
    for i, (a, b) in enumerate(zip(got, expected)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, f"{what}, value {i}"
        scale = max(1.0, float(np.max(np.abs(b))))
        assert np.max(np.abs(a - b)) <= 1e-6 * scale, f"{what}, value {i}"


def dynamic(unroll, in_function=False):
    def run(cell, inputs, **kwargs):
        def call(x):
            return tfrnn.dynamic_rnn(cell, x, unroll=unroll, **kwargs)

        return (tf.function(call) if in_function else call)(inputs)

    return run


@pytest.mark.parametrize("lengths", list(LENGTHS))
@pytest.mark.parametrize("cell_name", list(CELLS))
def test_every_unroll_equals_static_and_unroll_1(cell_name, lengths):
    cell = built(CELLS[cell_name](), F)
    inputs = random_inputs(B, T, F, seed=3)
    kwargs = dict(
        sequence_length=LENGTHS[lengths], training=True, reset_seeds=seeds_reset(cell)
    )
    expected = results(tfrnn.static_rnn, cell, inputs, **kwargs)
    assert_same(results(dynamic(1), cell, inputs, **kwargs), expected, "unroll=1")
    for unroll in UNROLLS[1:]:
        got = results(dynamic(unroll), cell, inputs, **kwargs)
        assert_same(got, expected, f"unroll={unroll}")


def test_every_unroll_in_tf_function():
    cell = built(CELLS["keras-lstm"](), F)
    inputs = random_inputs(B, T, F, seed=4)
    kwargs = dict(sequence_length=LENGTHS["short"])
    expected = results(tfrnn.static_rnn, cell, inputs, **kwargs)
    for unroll in UNROLLS:
        got = results(dynamic(unroll, in_function=True), cell, inputs, **kwargs)
        assert_same(got, expected, f"unroll={unroll}")


@pytest.mark.parametrize("unroll", [3, T + 1])
def test_time_major_and_last_valid_output(unroll):
    cell = built(CELLS["peephole-lstm"](), F)
    inputs = tf.transpose(random_inputs(B, T, F, seed=5), [1, 0, 2])
    lengths = [T, 0, 4, 7]
    for return_sequences in (True, False):
        kwargs = dict(
            sequence_length=lengths, time_major=True, return_sequences=return_sequences
        )
        expected = results(tfrnn.static_rnn, cell, inputs, **kwargs)
        got = results(dynamic(unroll), cell, inputs, **kwargs)
        assert_same(got, expected, f"return_sequences={return_sequences}")
    last, (h, _) = tfrnn.dynamic_rnn(
        cell,
        inputs,
        sequence_length=lengths,
        time_major=True,
        unroll=unroll,
        return_sequences=False,
    )
    np.testing.assert_array_equal(last, h)  # each row's last valid output


@pytest.mark.parametrize("unroll", [1, 4])
def test_loop_runs_whole_blocks_but_padding_steps_do_not_count(unroll):
    # A cell that counts its calls in its state: steps past the inputs' end
    # (T = 10 rounded up to 12 for k = 4), past a row's length or past the
    # longest row must leave the count alone.
    class CountingCell(keras.layers.Layer):
        state_size = 1
        output_size = 1

        def call(self, inputs, state):
            return state + 1.0, state + 1.0

    for lengths in (None, [2, 9, 0], [2, 4, 0]):
        outputs, state, all_states = tfrnn.dynamic_rnn(
            CountingCell(),
            tf.zeros([3, T, 1]),
            sequence_length=lengths,
            unroll=unroll,
            return_all_states=True,
        )
        expected = np.minimum(
            np.arange(1, T + 1), np.array(lengths or [T] * 3)[:, None]
        )
        np.testing.assert_array_equal(all_states[..., 0], expected)
        np.testing.assert_array_equal(state[:, 0], expected[:, -1])
        valid = np.arange(T) < np.array(lengths or [T] * 3)[:, None]
        np.testing.assert_array_equal(outputs[..., 0], np.where(valid, expected, 0))


def traced_ops(unroll, time, features=F):
    cell = built(keras.layers.LSTMCell(H), features)
    fn = tf.function(lambda x: tfrnn.dynamic_rnn(cell, x, unroll=unroll))
    return count_ops(fn.get_concrete_function(tf.TensorSpec([None, time, features])))


def test_graph_grows_with_unroll_not_with_time():
    # 28 and 784 are multiples of 1, 2, 4 and 7, so no padding op differs.
    by_unroll = {k: traced_ops(k, 28) for k in (1, 2, 4, 7)}
    for k in (2, 7):
        assert traced_ops(k, 784) == by_unroll[k]
    assert traced_ops(3, 20) == traced_ops(3, 781)  # both pad to blocks of 3
    assert by_unroll[1] < by_unroll[2] < by_unroll[4] < by_unroll[7]
    per_step = (by_unroll[7] - by_unroll[4]) / 3  # each extra step adds a cell
    assert per_step == pytest.approx((by_unroll[4] - by_unroll[2]) / 2, rel=0.1)
    cell = built(keras.layers.LSTMCell(H), F)
    static = tf.function(lambda x: tfrnn.static_rnn(cell, x))
    static_ops = count_ops(static.get_concrete_function(tf.TensorSpec([None, 28, F])))
    assert by_unroll[7] < static_ops


def op_types(concrete_function):
    """Op type -> count in a traced function and the functions it calls."""
    graph_def = concrete_function.graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += function.node_def
    return collections.Counter(node.op for node in nodes)


@pytest.mark.parametrize("unroll", [1, 4])
def test_no_masking_ops_without_lengths_or_mask(unroll):
    # T unknown when traced and not a multiple of k at run time: whole blocks
    # and the steps left run unmasked; with lengths every step selects.
    cell = built(keras.layers.LSTMCell(H), F)

    def loss_and_gradients(x, lengths=None):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs, _ = tfrnn.dynamic_rnn(
                cell, x, sequence_length=lengths, unroll=unroll
            )
            loss = tf.reduce_sum(outputs)
        return tape.gradient(loss, [x] + cell.trainable_variables)

    spec = tf.TensorSpec([None, None, F])
    unmasked = tf.function(loss_and_gradients).get_concrete_function(spec)
    masked = tf.function(loss_and_gradients).get_concrete_function(
        spec, tf.TensorSpec([None], tf.int32)
    )
    assert op_types(unmasked)["SelectV2"] == 0
    assert op_types(masked)["SelectV2"] >= 2 * unroll  # output and state, per step
    inputs = random_inputs(B, T, F, seed=6)
    expected = loss_and_gradients(inputs, tf.fill([B], T))  # masked, all valid
    for got, want in zip(unmasked(inputs), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_one_trace_serves_every_length():
    cell = built(keras.layers.GRUCell(H), F)
    fn = tf.function(
        lambda x, n: tfrnn.dynamic_rnn(cell, x, sequence_length=n, unroll=3),
        input_signature=[
            tf.TensorSpec([None, None, F]),
            tf.TensorSpec([None], tf.int32),
        ],
    )
    for time in (T, 23):
        inputs = random_inputs(2, time, F, seed=time)
        lengths = tf.constant([time, time - 5])
        outputs, state = fn(inputs, lengths)
        expected, expected_state = tfrnn.static_rnn(
            cell, inputs, sequence_length=lengths
        )
        np.testing.assert_allclose(outputs, expected, atol=1e-6)
        np.testing.assert_allclose(state, expected_state, atol=1e-6)
    assert fn.experimental_get_tracing_count() == 1
    assert len(fn._list_all_concrete_functions()) == 1


@pytest.mark.parametrize(
    "unroll, error, message",
    [
        (0, ValueError, r"unroll must be >= 1 .*got 0\. unroll=1 is the plain"),
        (2.0, TypeError, r"unroll must be an int >= 1 .*got 2\.0.*tfrnn\.static_rnn"),
        (True, TypeError, r"unroll must be an int >= 1"),
    ],
)
def test_bad_unroll_is_refused(unroll, error, message):
    cell = built(keras.layers.GRUCell(H), F)
    with pytest.raises(error, match=message):
        tfrnn.dynamic_rnn(cell, tf.ones([2, 4, F]), unroll=unroll)
