"""`tfrnn.compat.v1.nn` and `load_tf1_checkpoint` without TF1: state types,
TF1's argument errors, users' own cells, dropout by placeholder, scopes, and
the loader's refusals. (Equality with TF1's numbers: test_compat_tf1.py.)"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from tfrnn import tf1_checkpoint
from tfrnn.compat.v1 import nn

v1 = tf.compat.v1


def inputs(batch=3, time=4, features=2, seed=0):
    return tf.constant(
        np.random.default_rng(seed).normal(size=(batch, time, features)), tf.float32
    )


def test_lstm_state_is_c_then_h_so_state_1_is_the_last_output():
    """The tutorial's `final_state[1]` is TF1's h: the last output, as in TF1
    (with the main API's [h, c] it would be the cell state)."""
    cell = nn.rnn_cell.BasicLSTMCell(4)
    outputs, state = nn.dynamic_rnn(cell, inputs(), dtype=tf.float32)
    assert isinstance(state, nn.rnn_cell.LSTMStateTuple)
    assert state._fields == ("c", "h")
    np.testing.assert_array_equal(state[1], outputs[:, -1])
    np.testing.assert_array_equal(state.h, outputs[:, -1])
    assert not np.allclose(state.c, state.h)


@pytest.mark.parametrize("function", ["static_rnn", "dynamic_rnn"])
def test_dtype_is_required_without_initial_state(function):
    cell = nn.rnn_cell.GRUCell(3)
    x = inputs()
    x = tf.unstack(x, axis=1) if function == "static_rnn" else x
    with pytest.raises(ValueError, match="must give a dtype|dtype must be specified"):
        getattr(nn, function)(cell, x)
    state = cell.zero_state(3, tf.float32)
    outputs, _ = getattr(nn, function)(cell, x, initial_state=state)
    assert len(outputs) == 4 if function == "static_rnn" else outputs.shape == (3, 4, 3)


def test_static_rnn_takes_tf1s_list_only():
    cell = nn.rnn_cell.GRUCell(3)
    with pytest.raises(TypeError, match="inputs must be a sequence"):
        nn.static_rnn(cell, inputs(), dtype=tf.float32)
    with pytest.raises(ValueError, match="inputs must not be empty"):
        nn.static_rnn(cell, [], dtype=tf.float32)


def test_a_keras_cell_is_not_an_rnn_cell_without_zero_state():
    class NoZeroState:
        state_size = output_size = 3

        def __call__(self, inputs, state):
            return inputs, state

    with pytest.raises(TypeError, match="is not an RNNCell.*zero_state"):
        nn.dynamic_rnn(NoZeroState(), inputs(), dtype=tf.float32)


class Counter(nn.rnn_cell.RNNCell):
    """An old-style TF1 user cell: `__call__` itself, no variables.
    Output and state: the number of steps taken, in every unit."""

    @property
    def state_size(self):
        return 2

    @property
    def output_size(self):
        return 2

    def __call__(self, inputs, state, scope=None):
        new_state = state + 1.0
        return new_state, new_state


def counter_expectation(lengths, time):
    """By hand: step t outputs t + 1 until the row ends, then zeros; the
    state stops at the row's length."""
    outputs = np.array([[[t + 1.0] * 2 if t < n else [0.0] * 2 for t in range(time)]
                        for n in lengths])
    return outputs, np.array([[float(n)] * 2 for n in lengths])


@pytest.mark.parametrize("function", ["static_rnn", "dynamic_rnn"])
def test_users_own_cell_eager_and_in_a_session(function):
    lengths, x = [4, 0, 2], inputs()
    expected_outputs, expected_state = counter_expectation(lengths, 4)

    def run(x):
        if function == "static_rnn":
            outputs, state = nn.static_rnn(
                Counter(), tf.unstack(x, axis=1), dtype=tf.float32, sequence_length=lengths
            )
            return tf.stack(outputs, 1), state
        return nn.dynamic_rnn(Counter(), x, sequence_length=lengths, dtype=tf.float32)

    outputs, state = run(x)
    np.testing.assert_array_equal(outputs, expected_outputs)
    np.testing.assert_array_equal(state, expected_state)
    with tf.Graph().as_default():
        fetches = run(tf.constant(x.numpy()))
        with v1.Session() as session:
            outputs, state = session.run(fetches)
    np.testing.assert_array_equal(outputs, expected_outputs)
    np.testing.assert_array_equal(state, expected_state)


def test_dropout_keep_prob_fed_through_a_placeholder():
    """TF1's idiom: keep 1.0 fed at evaluation is the bare cell; keep 0.5
    zeros about half the outputs and doubles the rest."""
    x_value = inputs(batch=8).numpy()
    with tf.Graph().as_default():
        keep = v1.placeholder_with_default(1.0, [])
        cell = nn.rnn_cell.GRUCell(64)
        x = tf.constant(x_value)
        bare, _ = nn.dynamic_rnn(cell, x, dtype=tf.float32, scope="bare")
        wrapped = nn.rnn_cell.DropoutWrapper(cell, output_keep_prob=keep, seed=1)
        dropped, _ = nn.dynamic_rnn(wrapped, x, dtype=tf.float32, scope="bare")
        assert len(v1.trainable_variables()) == 4  # one GRU, shared
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            bare_value, kept = session.run((bare, dropped))
            halved = session.run(dropped, {keep: 0.5})
    np.testing.assert_array_equal(kept, bare_value)
    zeros = np.mean(halved == 0)
    assert 0.4 < zeros < 0.6, zeros
    nonzero = halved != 0
    np.testing.assert_allclose(halved[nonzero], 2 * bare_value[nonzero], rtol=1e-6)


def test_tf1s_variable_scopes_and_reuse_in_a_graph():
    """As TF1: names under `rnn` (or `scope`), a second bidirectional RNN in
    the same scope is refused, and reuse=True shares the first one's."""
    with tf.Graph().as_default():
        x = tf.zeros([2, 3, 4])
        nn.bidirectional_dynamic_rnn(
            nn.rnn_cell.LSTMCell(3), nn.rnn_cell.GRUCell(2), x, dtype=tf.float32
        )
        exists = "bidirectional_rnn/fw/lstm_cell/kernel already exists"
        with pytest.raises(ValueError, match=exists):
            nn.bidirectional_dynamic_rnn(
                nn.rnn_cell.LSTMCell(3), nn.rnn_cell.GRUCell(2), x, dtype=tf.float32
            )
        with v1.variable_scope(v1.get_variable_scope(), reuse=True):
            nn.bidirectional_dynamic_rnn(
                nn.rnn_cell.LSTMCell(3), nn.rnn_cell.GRUCell(2), x, dtype=tf.float32
            )
        nn.static_rnn(nn.rnn_cell.MultiRNNCell([nn.rnn_cell.BasicRNNCell(2)]),
                      tf.unstack(x, axis=1), dtype=tf.float32, scope="encoder")
        names = sorted(v.op.name for v in v1.global_variables())
    assert names == [
        "bidirectional_rnn/bw/gru_cell/candidate/bias",
        "bidirectional_rnn/bw/gru_cell/candidate/kernel",
        "bidirectional_rnn/bw/gru_cell/gates/bias",
        "bidirectional_rnn/bw/gru_cell/gates/kernel",
        "bidirectional_rnn/fw/lstm_cell/bias",
        "bidirectional_rnn/fw/lstm_cell/kernel",
        "encoder/multi_rnn_cell/cell_0/basic_rnn_cell/bias",
        "encoder/multi_rnn_cell/cell_0/basic_rnn_cell/kernel",
    ]


def test_a_cell_called_again_reuses_its_variables():
    cell = nn.rnn_cell.BasicLSTMCell(3)
    first, _ = nn.dynamic_rnn(cell, inputs(), dtype=tf.float32)
    second, _ = nn.dynamic_rnn(cell, inputs(), dtype=tf.float32)
    assert len(cell.variables) == 2
    np.testing.assert_array_equal(first, second)


# load_tf1_checkpoint's refusals ---------------------------------------------


def tf1_lstm(scope="rnn/lstm_cell", features=2, units=3, peepholes=False):
    rng = np.random.default_rng(0)
    weights = {
        f"{scope}/kernel": rng.normal(size=(features + units, 4 * units)),
        f"{scope}/bias": rng.normal(size=(4 * units,)),
    }
    if peepholes:
        for gate in "ifo":
            weights[f"{scope}/w_{gate}_diag"] = rng.normal(size=(units,))
    return weights


def test_loader_refuses_keras_default_gru():
    tf1 = {"rnn/gru_cell/gates/kernel": np.zeros((5, 6)), "rnn/gru_cell/gates/bias": np.zeros(6),
           "rnn/gru_cell/candidate/kernel": np.zeros((5, 3)),
           "rnn/gru_cell/candidate/bias": np.zeros(3)}
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError, match="reset_after=False"):
        tfrnn.load_tf1_checkpoint(tf1, keras.layers.GRUCell(3))
    tfrnn.load_tf1_checkpoint(tf1, keras.layers.GRUCell(3, reset_after=False))


def test_loader_refuses_peepholes_the_cell_lacks():
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError, match="peepholes=True"):
        tfrnn.load_tf1_checkpoint(tf1_lstm(peepholes=True), tfrnn.LSTMCell(3))
    loaded = tfrnn.load_tf1_checkpoint(
        tf1_lstm(peepholes=True), tfrnn.LSTMCell(3, use_peepholes=True)
    )
    assert len(loaded) == 4


def test_loader_names_what_is_there_when_the_scope_is_ambiguous():
    tf1 = {**tf1_lstm("rnn/lstm_cell"), **tf1_lstm("rnn/lstm_cell_1")}
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError, match="lstm_cell, lstm_cell_1"):
        tfrnn.load_tf1_checkpoint(tf1, tfrnn.LSTMCell(3))
    tfrnn.load_tf1_checkpoint(tf1, tfrnn.LSTMCell(3), scope="rnn/lstm_cell_1")


def tf1_gru(scope="rnn/gru_cell", features=2, units=3):
    return {f"{scope}/gates/kernel": np.zeros((features + units, 2 * units)),
            f"{scope}/gates/bias": np.zeros(2 * units),
            f"{scope}/candidate/kernel": np.zeros((features + units, units)),
            f"{scope}/candidate/bias": np.zeros(units)}


GRU = lambda: keras.layers.GRUCell(3, reset_after=False)  # noqa: E731
STACK = {**tf1_lstm("rnn/multi_rnn_cell/cell_0/lstm_cell"),
         **tf1_lstm("rnn/multi_rnn_cell/cell_1/lstm_cell", features=3)}


@pytest.mark.parametrize(
    "checkpoint, cell, scope, message",
    [
        (tf1_lstm(), GRU, "rnn", r"holds an LSTM's variables under 'rnn/lstm_cell' "
         r"\(bias, kernel\), where the GRUCell needs a GRU's; load them into a "
         r"tfrnn\.LSTMCell or keras\.layers\.LSTMCell"),
        (tf1_lstm(), GRU, "rnn/lstm_cell", r"holds an LSTM's .* the GRUCell needs"),
        (tf1_gru(), lambda: tfrnn.LSTMCell(3), "rnn",
         r"holds a GRU's .*'rnn/gru_cell'.* the LSTMCell needs an LSTM's; .*"
         r"GRUCell\(units, reset_after=False\)"),
        (tf1_lstm("rnn/basic_lstm_cell"), lambda: keras.layers.SimpleRNNCell(3), "rnn",
         r"holds an LSTM's .* the SimpleRNNCell needs a vanilla RNN's"),
        (STACK, GRU, "rnn", r"holds a MultiRNNCell's variables under "
         r"'rnn/multi_rnn_cell' \(cell_0, cell_1\), where the GRUCell needs a GRU's"),
        (tf1_lstm(), lambda: tfrnn.MultiRNNCell([tfrnn.LSTMCell(3)]), "rnn",
         r"holds an LSTM's .* the MultiRNNCell needs a MultiRNNCell's"),
        (tf1_gru("rnn/my_cell"), lambda: tfrnn.LSTMCell(3), "rnn",
         r"holds a GRU's variables under 'rnn/my_cell'"),
        ({"rnn/my_cell/kernel": np.zeros((5, 3)), "rnn/my_cell/bias": np.zeros(3)},
         lambda: tfrnn.LSTMCell(3), "rnn",
         r"'rnn/my_cell/kernel' has shape \(5, 3\), not the 4 \* 3 gate columns"),
    ],
    ids=["gru-on-lstm", "gru-on-lstm-scope", "lstm-on-gru", "simple-on-lstm",
         "gru-on-stack", "stack-on-lstm", "lstm-on-unnamed-gru", "lstm-on-unnamed-rnn"],
)
def test_loader_says_which_cell_the_checkpoint_holds(checkpoint, cell, scope, message):
    """Not a suggestion to change the scope: what is saved, what the cell
    needs, and the cell that loads it."""
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError, match=message):
        tfrnn.load_tf1_checkpoint(checkpoint, cell(), scope=scope)


def test_loader_names_the_path_of_a_missing_checkpoint(tmp_path):
    """A TF1 checkpoint is a prefix (model.ckpt for model.ckpt.index and
    .data-*), or a directory whose 'checkpoint' file names one."""
    with tf.Graph().as_default(), v1.Session() as session:
        for name, value in tf1_lstm().items():
            v1.get_variable(name, initializer=value.astype(np.float32))
        session.run(v1.global_variables_initializer())
        v1.train.Saver().save(session, str(tmp_path / "model.ckpt"))
    folder = re.escape(str(tmp_path))
    fix = r"; give the checkpoint's prefix, the path Saver\.save was given"
    refusals = {
        tmp_path / "nope": rf"there is no TF1 checkpoint at '{folder}/nope' "
        rf"\(no '{folder}/nope\.index'\){fix}",
        tmp_path / "model.ckpt.index": rf"'{folder}/model\.ckpt\.index' is one of "
        rf"the files of the checkpoint '{folder}/model\.ckpt'{fix}",
    }
    for path, message in refusals.items():
        with pytest.raises(FileNotFoundError, match=rf"^load_tf1_checkpoint: {message}"):
            tfrnn.load_tf1_checkpoint(path, tfrnn.LSTMCell(3))
    for path in (tmp_path, tmp_path / "model.ckpt"):
        assert len(tfrnn.load_tf1_checkpoint(path, tfrnn.LSTMCell(3))) == 3
    (tmp_path / "checkpoint").unlink()
    with pytest.raises(
        FileNotFoundError,
        match=rf"'{folder}' is a directory without a 'checkpoint' file \(it holds "
        rf"'{folder}/model\.ckpt'\){fix}",
    ):
        tfrnn.load_tf1_checkpoint(tmp_path, tfrnn.LSTMCell(3))


def test_loader_rearranges_gates_by_hand():
    """TF1's kernel columns i, j, f, o over rows [x; h] become Keras's i, f, j,
    o in `kernel` (x rows) and `recurrent_kernel` (h rows); forget_bias 1.0
    goes into a Keras LSTMCell's forget bias."""
    units, features = 1, 1
    kernel = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])  # rows x, h
    bias = np.array([10.0, 20.0, 30.0, 40.0])  # i, j, f, o
    cell = keras.layers.LSTMCell(units)
    tfrnn.load_tf1_checkpoint(
        {"rnn/basic_lstm_cell/kernel": kernel, "rnn/basic_lstm_cell/bias": bias}, cell
    )
    np.testing.assert_array_equal(cell.kernel.numpy(), [[1.0, 3.0, 2.0, 4.0]])
    np.testing.assert_array_equal(cell.recurrent_kernel.numpy(), [[5.0, 7.0, 6.0, 8.0]])
    np.testing.assert_array_equal(cell.bias.numpy(), [10.0, 31.0, 20.0, 40.0])
    assert cell.kernel.shape == (features, 4 * units)



def test_one_cell_twice_in_a_stack_shares_its_weights_as_in_tf1():
    cell = nn.rnn_cell.GRUCell(2)
    stack = nn.rnn_cell.MultiRNNCell([cell, cell])
    outputs, (state_0, state_1) = nn.dynamic_rnn(stack, inputs(features=2), dtype=tf.float32)
    assert len(stack.variables) == 4  # one GRU's four, used by both layers
    single, _ = nn.dynamic_rnn(cell, inputs(features=2), dtype=tf.float32)
    np.testing.assert_array_equal(state_0, single[:, -1])
    assert not np.allclose(state_1, state_0)
