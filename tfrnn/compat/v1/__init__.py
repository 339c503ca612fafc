"""TF1's RNN API on tfrnn's unrolls: `nn` mirrors the RNN part of
`tf.compat.v1.nn` (`static_rnn`, `dynamic_rnn`, `bidirectional_dynamic_rnn`,
`static_bidirectional_rnn`, `rnn_cell`)."""

from tfrnn.compat.v1 import nn

__all__ = ["nn"]
