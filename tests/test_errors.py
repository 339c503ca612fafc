"""One test per bad input: each error says what is wrong and what to do."""

import keras
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


@pytest.mark.parametrize("in_function", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_negative(unroll, lstm, in_function):
    def run(x, n):
        return unroll(lstm, x, sequence_length=n)

    run = tf.function(run) if in_function else run
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be >= 0"):
        run(tf.ones([2, 4, 3]), tf.constant([-1, 2]))


@pytest.mark.parametrize("in_function", [False, True], ids=["eager", "function"])
@pytest.mark.parametrize("unroll", UNROLLS, ids=IDS)
def test_sequence_length_longer_than_time(unroll, lstm, in_function):
    def run(x, n):
        return unroll(lstm, x, sequence_length=n)

    run = tf.function(run) if in_function else run
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="<= the number of time steps in inputs"
    ):
        run(tf.ones([2, 4, 3]), tf.constant([5, 2]))


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
