"""tfrnn's cells: serialization, export, and the dropout wrapper's rules."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built, random_inputs

F, H = 3, 4


def peephole_stack():
    return tfrnn.MultiRNNCell(
        [
            tfrnn.DropoutWrapper(
                tfrnn.LSTMCell(H, use_peepholes=True, cell_clip=1.0, num_proj=2),
                input_keep_prob=0.8,
                state_keep_prob=0.7,
                variational_recurrent=True,
                seed=3,
            ),
            keras.layers.GRUCell(H),
        ]
    )


def test_config_round_trip_rebuilds_the_same_cell():
    cell = built(peephole_stack(), F)
    config = keras.saving.serialize_keras_object(cell)
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone.cells[0].cell, tfrnn.LSTMCell)
    assert clone.cells[0].cell.num_proj == 2 and clone.cells[0].cell.use_peepholes
    assert clone.cells[0].state_keep_prob == 0.7
    built(clone, F).set_weights(cell.get_weights())
    inputs = random_inputs(2, 5, F)
    expected, _ = tfrnn.dynamic_rnn(cell, inputs)
    got, _ = tfrnn.dynamic_rnn(clone, inputs)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_saved_model_export_serves_any_length(tmp_path):
    cell = built(peephole_stack(), F)

    class Exported(tf.Module):
        def __init__(self, cell):
            super().__init__()
            self.cell = cell

        @tf.function(input_signature=[tf.TensorSpec([None, None, F])])
        def __call__(self, inputs):
            outputs, _ = tfrnn.dynamic_rnn(self.cell, inputs, training=False)
            return outputs

    module = Exported(cell)
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    for time in (2, 7):
        inputs = random_inputs(3, time, F, seed=time)
        np.testing.assert_allclose(loaded(inputs), module(inputs), atol=1e-6)


def dropout_cell(**kwargs):
    # An identity-like cell: output = input (so dropout is visible), no state use.
    inner = keras.layers.SimpleRNNCell(
        F,
        activation=None,
        kernel_initializer="identity",
        recurrent_initializer="zeros",
        bias_initializer="zeros",
    )
    return built(tfrnn.DropoutWrapper(inner, seed=0, **kwargs), F)


@pytest.mark.parametrize("unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn])
def test_dropout_is_inactive_in_inference(unroll):
    cell = dropout_cell(input_keep_prob=0.5, output_keep_prob=0.5, state_keep_prob=0.5)
    inputs = tf.ones([8, 6, F])
    for training in (None, False):
        outputs, _ = unroll(cell, inputs, training=training)
        np.testing.assert_allclose(outputs, inputs)


@pytest.mark.parametrize("unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn])
def test_per_step_dropout_draws_new_masks_each_step(unroll):
    cell = dropout_cell(input_keep_prob=0.5)
    outputs, _ = unroll(cell, tf.ones([64, 6, F]), training=True)
    kept = outputs.numpy() != 0
    assert set(np.unique(outputs)) == {0.0, 2.0}  # kept units scaled by 1/keep
    assert 0.4 < kept.mean() < 0.6
    assert (kept[:, 0] != kept[:, 1]).any()  # masks differ between steps


@pytest.mark.parametrize("unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn])
def test_variational_dropout_keeps_one_mask_per_sequence(unroll):
    cell = dropout_cell(input_keep_prob=0.5, variational_recurrent=True)
    outputs, _ = unroll(cell, tf.ones([64, 6, F]), training=True)
    kept = outputs.numpy() != 0
    assert 0.4 < kept.mean() < 0.6
    assert (kept == kept[:, :1]).all()  # the same units at every step
    assert (kept[0] != kept[1:]).any()  # but not the same for every sequence
    second, _ = unroll(cell, tf.ones([64, 6, F]), training=True)
    assert ((second.numpy() != 0) != kept).any()  # a new batch, new masks


def test_state_dropout_spares_lstm_c():
    lstm = tfrnn.LSTMCell(H)
    cell = built(tfrnn.DropoutWrapper(lstm, state_keep_prob=0.01, seed=1), F)
    state = tfrnn.zero_state(cell, 16)
    _, (h, c) = cell(tf.ones([16, F]), state, training=True)
    _, (h_ref, c_ref) = lstm(tf.ones([16, F]), state)
    np.testing.assert_allclose(c, c_ref)  # c is never dropped (TF1's rule)
    assert (h.numpy() == 0).mean() > 0.9


def test_keras_cell_dropout_runs_in_while_loop():
    # Keras's own recurrent_dropout masks are drawn before the loop, as in RNN.
    cell = built(keras.layers.GRUCell(H, dropout=0.5, recurrent_dropout=0.5), F)
    fn = tf.function(lambda x: tfrnn.dynamic_rnn(cell, x, training=True))
    first, _ = fn(tf.ones([4, 5, F]))
    second, _ = fn(tf.ones([4, 5, F]))
    assert np.abs(first - second).max() > 0  # masks redrawn per batch
    inference, _ = tfrnn.dynamic_rnn(cell, tf.ones([4, 5, F]), training=False)
    reference, _ = tfrnn.static_rnn(cell, tf.ones([4, 5, F]))
    np.testing.assert_allclose(inference, reference, atol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: tfrnn.LSTMCell(0), "units must be positive"),
        (lambda: tfrnn.LSTMCell(4, proj_clip=1.0), "proj_clip needs num_proj"),
        (lambda: tfrnn.MultiRNNCell([]), "at least one cell"),
        (
            lambda: tfrnn.DropoutWrapper(tfrnn.LSTMCell(4), input_keep_prob=0.0),
            r"input_keep_prob must be in \(0, 1\]",
        ),
    ],
)
def test_bad_cell_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("unroll", [tfrnn.static_rnn, tfrnn.dynamic_rnn])
@pytest.mark.parametrize(
    "make_cell",
    [
        lambda dtype: keras.layers.GRUCell(4, dtype=dtype),
        lambda dtype: tfrnn.LSTMCell(4, use_peepholes=True, num_proj=3, dtype=dtype),
    ],
    ids=["keras-gru", "tfrnn-lstm"],
)
def test_cells_compute_in_their_own_dtype(unroll, make_cell):
    # Mixed precision: float16 compute with float32 weights, fed float32 inputs.
    cell = make_cell("mixed_float16")
    outputs, state = unroll(cell, tf.ones([2, 3, F]))
    assert outputs.dtype == tf.float16
    assert all(leaf.dtype == tf.float16 for leaf in tf.nest.flatten(state))
    # float64 inputs to a float32 cell are cast, as Keras's own layers do.
    reference = make_cell("float32")
    outputs64, _ = unroll(reference, tf.ones([2, 3, F], tf.float64))
    outputs32, _ = unroll(reference, tf.ones([2, 3, F]))
    assert outputs64.dtype == tf.float32
    np.testing.assert_array_equal(outputs64, outputs32)
