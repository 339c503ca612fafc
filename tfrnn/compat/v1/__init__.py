"""TF1's RNN API on tfrnn's unrolls: `nn` mirrors the RNN part of
`tf.compat.v1.nn` (`static_rnn`, `dynamic_rnn`, `bidirectional_dynamic_rnn`,
`static_bidirectional_rnn`, `rnn_cell`), with TF1's signatures and defaults,
math, state types and variable names (`rnn/basic_lstm_cell/kernel`,
`rnn/multi_rnn_cell/cell_0/...`, `bidirectional_rnn/fw/...`), so a TF1
`tf.compat.v1.train.Saver` checkpoint restores into the migrated program.

From TF1 to `nn` (TF1's conventions) to tfrnn's main API (Keras's):

    TF1                                  tfrnn.compat.v1.nn          tfrnn main API
    tf.nn.static_rnn, dynamic_rnn        nn.static_rnn, ...          tfrnn.static_rnn, dynamic_rnn
    tf.nn.bidirectional_dynamic_rnn,     the same names              tfrnn.bidirectional_dynamic_rnn,
      static_bidirectional_rnn                                         static_bidirectional_rnn
    rnn_cell.RNNCell (your own cells)    nn.rnn_cell.RNNCell         a Keras cell: call(inputs, states)
    rnn_cell.BasicRNNCell                nn.rnn_cell.BasicRNNCell    keras.layers.SimpleRNNCell
    rnn_cell.BasicLSTMCell, LSTMCell     nn.rnn_cell.(Basic)LSTMCell tfrnn.LSTMCell
    rnn_cell.GRUCell                     nn.rnn_cell.GRUCell         keras.layers.GRUCell(reset_after=False)
    rnn_cell.MultiRNNCell,               the same names              tfrnn.MultiRNNCell,
      DropoutWrapper, ResidualWrapper                                  tfrnn.DropoutWrapper, -
    rnn_cell.LSTMStateTuple(c, h)        nn.rnn_cell.LSTMStateTuple  [h, c]  (Keras's order)
    a tf.train.Saver checkpoint          Saver().restore(...)        tfrnn.load_tf1_checkpoint(checkpoint,
                                                                       cell, scope="rnn")

The one difference when moving on to the main API is the LSTM state order:
`final_state[1]` is `h` in TF1 and `nn`, the cell state `c` in the main API
(write `h, c = final_state`). `tfrnn.load_tf1_checkpoint` rearranges TF1's
fused kernel and gate order (i, j, f, o) into Keras's (i, f, c, o), moves
`forget_bias` into the bias for Keras's `LSTMCell`, and refuses Keras's
default `GRUCell(reset_after=True)`, which no TF1 weights can reproduce.
Not supported: nested (tuple) inputs, partitioned variables outside Session
graphs, `DeviceWrapper`.
"""

from tfrnn.compat.v1 import nn

__all__ = ["nn"]
