"""One test per bad input: each error says what is wrong and what to do."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built

UNROLLS = [tfrnn.static_rnn, tfrnn.dynamic_rnn]
IDS = ["static", "dynamic"]


@pytest.fixture
def lstm():
    return built(keras.layers.LSTMCell(4), 3)


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_inputs_not_rank_3(unroll, lstm):
    with pytest.raises(ValueError, match=r"rank-3 tensor \[batch, time, features\]"):
        unroll(lstm, tf.ones([2, 3]))


def test_list_inputs_not_rank_2(lstm):
    with pytest.raises(ValueError, match=r"inputs\[1\] has shape .*rank-2"):
        tfrnn.static_rnn(lstm, [tf.ones([2, 3]), tf.ones([2, 1, 3])])


def test_empty_list_inputs(lstm):
    with pytest.raises(ValueError, match="empty list"):
        tfrnn.static_rnn(lstm, [])


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_feature_size_not_what_cell_was_built_for(unroll, lstm):
    with pytest.raises(
        ValueError,
        match=r"5 features per step but the LSTMCell "
        r"was built for 3\. Feed \[batch, time, 3\]",
    ):
        unroll(lstm, tf.ones([2, 4, 5]))


def test_static_needs_known_time(lstm):
    fn = tf.function(
        lambda x: tfrnn.static_rnn(lstm, x),
        input_signature=[tf.TensorSpec([None, None, 3])],
    )
    with pytest.raises(
        ValueError, match="must be known when the graph is built.*Use tfrnn.dynamic_rnn"
    ):
        fn.get_concrete_function()


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_wrong_rank(unroll, lstm):
    with pytest.raises(ValueError, match=r"vector of shape \[batch_size\]"):
        unroll(lstm, tf.ones([2, 4, 3]), sequence_length=[[1, 2]])


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_wrong_count(unroll, lstm):
    with pytest.raises(ValueError, match="3 entries for a batch of 2"):
        unroll(lstm, tf.ones([2, 4, 3]), sequence_length=[1, 2, 3])


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_wrong_count_in_graph(unroll, lstm):
    fn = tf.function(
        lambda x, n: unroll(lstm, x, sequence_length=n),
        input_signature=[tf.TensorSpec([None, 4, 3]), tf.TensorSpec([None], tf.int32)],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="one entry per sequence"):
        fn(tf.ones([2, 4, 3]), tf.constant([1, 2, 3]))


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_not_integer(unroll, lstm):
    with pytest.raises(TypeError, match=r"int32 or int64; got float32.*tf\.cast"):
        unroll(lstm, tf.ones([2, 4, 3]), sequence_length=tf.constant([1.0, 2.0]))


@pytest.mark.parametrize(
    "lengths, message",
    [([-1, 2], "must be >= 0"), ([5, 2], "<= the number of time steps in inputs")],
    ids=["negative", "longer_than_time"],
)
@pytest.mark.parametrize("in_function", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_out_of_range(unroll, lstm, in_function, lengths, message):
    def run(x, n):
        return unroll(lstm, x, sequence_length=n)

    run = tf.function(run) if in_function else run
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        run(tf.ones([2, 4, 3]), tf.constant(lengths))


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_initial_state_structure_mismatch(unroll, lstm):
    with pytest.raises(
        ValueError,
        match=r"initial_state must have the structure of the LSTMCell's "
        r"state_size \[4, 4\].*got a state with structure tensor",
    ):
        unroll(lstm, tf.ones([2, 4, 3]), initial_state=tf.zeros([2, 4]))


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_initial_state_wrong_width(unroll, lstm):
    with pytest.raises(
        ValueError, match=r"shape \(2, 7\) where the LSTMCell expects \[batch, 4\]"
    ):
        unroll(
            lstm, tf.ones([2, 4, 3]), initial_state=[tf.zeros([2, 7]), tf.zeros([2, 4])]
        )


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_zero_time_steps(unroll, lstm):
    with pytest.raises(ValueError, match="0 time steps"):
        unroll(lstm, tf.ones([2, 0, 3]))


@pytest.mark.parametrize("lengths", [[11, 3, 3, 3], [-5, 3, 3, 3]], ids=["long", "neg"])
@pytest.mark.parametrize("given", ["argument", "constant"])
@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_checks_hold_under_xla(unroll, given, lengths):
    # XLA drops tf.debugging assertions: lengths it cannot check are refused
    # when the graph is built, constant ones are checked then.
    cell = built(keras.layers.GRUCell(4), 3)
    inputs = tf.ones([4, 10, 3])
    if given == "argument":
        run = tf.function(
            lambda x, n: unroll(cell, x, sequence_length=n), jit_compile=True
        )
        message = r"cannot be checked inside tf.function\(jit_compile=True\).*mask="
        with pytest.raises(ValueError, match=message):
            run(inputs, tf.constant(lengths))
    else:
        run = tf.function(
            lambda x: unroll(cell, x, sequence_length=lengths), jit_compile=True
        )
        message = "must be >= 0" if lengths[0] < 0 else r"<= the number of time steps"
        with pytest.raises(ValueError, match=message):
            run(inputs)


def test_constant_valid_lengths_run_under_xla():
    cell = built(keras.layers.GRUCell(4), 3)
    inputs = tf.random.normal([4, 10, 3], seed=1)
    run = tf.function(
        lambda x: tfrnn.dynamic_rnn(cell, x, sequence_length=[10, 3, 0, 7]),
        jit_compile=True,
    )
    expected, _ = tfrnn.dynamic_rnn(cell, inputs, sequence_length=[10, 3, 0, 7])
    np.testing.assert_allclose(run(inputs)[0], expected, atol=1e-5)


@pytest.mark.parametrize(
    "not_a_cell, message",
    [
        (
            lambda: keras.layers.Dense(3),
            r"cell must be an RNN cell.*keras\.layers\.LSTMCell\(units\); got "
            r"Dense, which has no state_size",
        ),
        (
            lambda: keras.layers.LSTM(3),
            r"cell is a Keras RNN layer \(LSTM\).*pass a cell instead: the "
            r"layer's \.cell, or keras\.layers\.LSTMCell\(3\)",
        ),
    ],
    ids=["dense_layer", "keras_rnn_layer"],
)
@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_not_a_cell(unroll, not_a_cell, message):
    with pytest.raises(TypeError, match=message):
        unroll(not_a_cell(), tf.ones([2, 4, 3]))


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_initial_state_of_another_batch(unroll, lstm):
    state = tfrnn.zero_state(lstm, 3)
    with pytest.raises(
        ValueError,
        match=r"initial_state has 3 rows for a batch of 2 sequences; give one "
        r"state row per sequence, e\.g\. tfrnn\.zero_state\(cell, 2\)",
    ):
        unroll(lstm, tf.ones([2, 4, 3]), initial_state=state)
    fn = tf.function(
        lambda x, h, c: unroll(lstm, x, initial_state=[h, c]),
        input_signature=[tf.TensorSpec([None, 4, 3])] + [tf.TensorSpec([None, 4])] * 2,
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="one row per sequence"):
        fn(tf.ones([2, 4, 3]), *state)


def test_list_inputs_of_different_widths(lstm):
    with pytest.raises(
        ValueError,
        match=r"inputs\[2\] has shape \(2, 5\) where inputs\[0\] has \(2, 3\); "
        r"every step of a list input must have the same",
    ):
        tfrnn.static_rnn(lstm, [tf.ones([2, 3]), tf.ones([2, 3]), tf.ones([2, 5])])


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
@pytest.mark.parametrize(
    "lengths", [[4, 2], tf.constant([4, 2])], ids=["list", "tensor"]
)
def test_tf1_order_lengths_given_as_initial_state(unroll, lstm, lengths):
    # TF1: dynamic_rnn(cell, inputs, sequence_length, initial_state, ...)
    with pytest.raises(
        TypeError,
        match=r"initial_state got integers of shape \[2\].*TF1's positional "
        r"order.*Pass them by keyword: sequence_length=lengths",
    ):
        unroll(lstm, tf.ones([2, 4, 3]), lengths)


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_tf1_order_dtype_given_as_sequence_length(unroll, lstm):
    # TF1: static_rnn(cell, inputs, initial_state, dtype, sequence_length)
    steps = [tf.ones([2, 3])] * 4 if unroll is tfrnn.static_rnn else tf.ones([2, 4, 3])
    with pytest.raises(
        TypeError,
        match=r"sequence_length got a dtype \(float32\).*TF1's static_rnn\(cell, "
        r"inputs, initial_state, dtype, sequence_length\).*dtype=tf\.float32",
    ):
        unroll(lstm, steps, None, tf.float32)


@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_tf1_order_dtype_given_as_time_major(unroll, lstm):
    # TF1: dynamic_rnn(cell, inputs, sequence_length, initial_state, dtype)
    with pytest.raises(
        TypeError, match=r"time_major must be True or False; got tf\.float32.*dtype="
    ):
        unroll(lstm, tf.ones([2, 4, 3]), None, None, tf.float32)


# Errors name what the user called, not the unroll it runs --------------------

CALLED = {
    "tfrnn.RNN": lambda cell, x, **kw: tfrnn.RNN(cell)(x, **kw),
    "tfrnn.RNN(static)": lambda cell, x, **kw: tfrnn.RNN(cell, unroll="static")(
        x, **kw
    ),
    "bidirectional_dynamic_rnn": lambda cell, x, **kw: tfrnn.bidirectional_dynamic_rnn(
        cell, cell, x, **kw
    ),
    "static_bidirectional_rnn": lambda cell, x, **kw: tfrnn.static_bidirectional_rnn(
        cell, cell, x, **kw
    ),
    "dynamic_rnn": tfrnn.dynamic_rnn,
    "static_rnn": tfrnn.static_rnn,
}


@pytest.mark.parametrize("called", CALLED)
def test_errors_name_the_function_or_layer_called(called, lstm):
    """When the graph is built and in its run-time assertions alike."""
    name = re.escape(called.split("(")[0])
    call = CALLED[called]
    with pytest.raises(TypeError, match=rf"{name}: sequence_length must be int32"):
        call(lstm, tf.ones([2, 4, 3]), sequence_length=tf.constant([1.0, 2.0]))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=rf"{name}: sequence_length must be >= 0"
    ):
        call(lstm, tf.ones([2, 4, 3]), sequence_length=tf.constant([-1, 2]))


@pytest.mark.parametrize("called", CALLED)
def test_integer_inputs_are_refused(called, lstm):
    """Keras's cells would promote them to floats (token ids, most often,
    that miss their embedding); tfrnn names the two fixes."""
    with pytest.raises(
        TypeError,
        match=rf"{re.escape(called.split('(')[0])}: inputs must be floating point; "
        r"got int32\. Embed token ids first \(keras\.layers\.Embedding\), or cast "
        r"numeric features: tf\.cast\(inputs, tf\.float32\)",
    ):
        CALLED[called](lstm, tf.ones([2, 4, 3], tf.int32))
    with pytest.raises(TypeError, match=r"static_rnn: inputs must be floating point"):
        tfrnn.static_rnn(lstm, [tf.ones([2, 3], tf.int64)] * 4)
