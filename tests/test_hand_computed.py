"""Tiny cells with constant weights, whose outputs can be written down by hand."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import built


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def linear_cell(recurrent="ones"):
    """`h_t = x_t . 1 + h_{t-1} . recurrent`: no activation, bias zero, one unit."""
    return keras.layers.SimpleRNNCell(
        1,
        activation=None,
        kernel_initializer="ones",
        recurrent_initializer=recurrent,
        bias_initializer="zeros",
    )


def test_linear_vanilla_rnn_is_a_running_sum(unroll):
    # h_t = x_t . 1 + h_{t-1}: the running sum of all inputs so far.
    cell = built(linear_cell(), 2)
    inputs = tf.constant([[[1.0, 0.0], [2.0, 1.0], [0.5, 0.5], [1.0, 1.0]]] * 3)
    outputs, state = unroll(cell, inputs, sequence_length=[4, 2, 0])
    np.testing.assert_allclose(
        outputs[..., 0],
        [[1.0, 4.0, 5.0, 7.0], [1.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
    )
    np.testing.assert_allclose(state[:, 0], [7.0, 4.0, 0.0])


def test_lstm_forget_gate_alone_decays_the_cell(unroll):
    # Zero weights: i = f = o = 0, j = 0, so c_t = sigmoid(0 + forget_bias) * c_{t-1}
    # and h_t = sigmoid(0) * tanh(c_t) = tanh(c_t) / 2.
    cell = built(
        tfrnn.LSTMCell(
            1,
            forget_bias=1.0,
            kernel_initializer="zeros",
            recurrent_initializer="zeros",
        ),
        1,
    )
    c0 = tf.ones([1, 1])
    outputs, (h, c) = unroll(
        cell, tf.zeros([1, 3, 1]), initial_state=[tf.zeros([1, 1]), c0]
    )
    c_expected = sigmoid(1.0) ** np.arange(1, 4)
    np.testing.assert_allclose(outputs[0, :, 0], np.tanh(c_expected) / 2, rtol=1e-6)
    np.testing.assert_allclose(c[0, 0], c_expected[-1], rtol=1e-6)
    np.testing.assert_allclose(h[0, 0], np.tanh(c_expected[-1]) / 2, rtol=1e-6)


def test_peepholes_clip_and_projection_by_hand(unroll):
    # Peephole weights 1, other weights 0, c0 = 1, units 2, projection of ones:
    #   f = i = c0 = 1: c1 = sigmoid(1 + 1) * 1 + sigmoid(1) * tanh(0) = 0.881
    #   clipped to cell_clip = 0.5; o = w_o * c1 = 0.5; m = sigmoid(.5) tanh(.5)
    #   h1 = projection(m) = 2 m = 0.575, clipped to proj_clip = 0.4.
    cell = tfrnn.LSTMCell(
        2,
        use_peepholes=True,
        cell_clip=0.5,
        num_proj=1,
        proj_clip=0.4,
        kernel_initializer="ones",
        recurrent_initializer="zeros",
    )
    cell.build((None, 1))
    cell.kernel.assign(tf.zeros_like(cell.kernel))
    outputs, (h, c) = unroll(
        cell, tf.zeros([1, 1, 1]), initial_state=[tf.zeros([1, 1]), tf.ones([1, 2])]
    )
    assert sigmoid(2.0) > 0.5  # so the cell clip is what sets c1
    np.testing.assert_allclose(c, [[0.5, 0.5]])
    assert 2 * sigmoid(0.5) * np.tanh(0.5) > 0.4  # so the projection clip bites
    np.testing.assert_allclose(h, [[0.4]], rtol=1e-6)
    np.testing.assert_allclose(outputs[:, 0], h)

    cell.proj_clip = None  # unclipped projection: 2 sigmoid(0.5) tanh(0.5)
    _, (h, _) = unroll(
        cell, tf.zeros([1, 1, 1]), initial_state=[tf.zeros([1, 1]), tf.ones([1, 2])]
    )
    np.testing.assert_allclose(h, [[2 * sigmoid(0.5) * np.tanh(0.5)]], rtol=1e-6)


def test_multi_rnn_cell_feeds_each_layer_the_one_below(unroll):
    # Two linear running-sum layers: layer 2 sums layer 1's running sums.
    cell = built(tfrnn.MultiRNNCell([linear_cell(), linear_cell()]), 1)
    outputs, (lower, top) = unroll(cell, tf.ones([1, 4, 1]))
    np.testing.assert_allclose(outputs[0, :, 0], [1.0, 3.0, 6.0, 10.0])
    np.testing.assert_allclose(lower, [[4.0]])
    np.testing.assert_allclose(top, [[10.0]])


@pytest.mark.parametrize("time_major", [False, True])
def test_time_major_layout(unroll, time_major):
    cell = built(linear_cell(recurrent="zeros"), 1)
    batch_major = tf.reshape(tf.range(6, dtype=tf.float32), [2, 3, 1])
    inputs = tf.transpose(batch_major, [1, 0, 2]) if time_major else batch_major
    outputs, state = unroll(cell, inputs, time_major=time_major)
    assert outputs.shape == inputs.shape
    np.testing.assert_allclose(outputs, inputs)  # identity cell
    np.testing.assert_allclose(state[:, 0], [2.0, 5.0])
