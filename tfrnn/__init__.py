"""tfrnn: static and dynamic RNN unrolling with TF1's semantics on Keras 3 cells.

* `static_rnn`: the recurrence unrolled into the graph (TF1 `tf.nn.static_rnn`,
  Keras `unroll=True`); every step is a tensor of its own.
* `dynamic_rnn`: one cell in a `tf.while_loop` (TF1 `tf.nn.dynamic_rnn`, Keras
  `unroll=False`); the graph does not grow with the sequence length.

Both share one step function and TF1's `sequence_length` rule: past a row's
end, outputs are zeros and the state is copied through.
"""

from tfrnn.bidirectional import bidirectional_dynamic_rnn
from tfrnn.bidirectional import static_bidirectional_rnn
from tfrnn.cells import DropoutWrapper
from tfrnn.cells import LSTMCell
from tfrnn.cells import MultiRNNCell
from tfrnn.dynamic import dynamic_rnn
from tfrnn.layer import RNN
from tfrnn.static import static_rnn
from tfrnn.step import zero_state
from tfrnn.tf1_checkpoint import load_tf1_checkpoint

__version__ = "0.1.0"

__all__ = [
    "DropoutWrapper",
    "LSTMCell",
    "MultiRNNCell",
    "RNN",
    "bidirectional_dynamic_rnn",
    "dynamic_rnn",
    "load_tf1_checkpoint",
    "static_bidirectional_rnn",
    "static_rnn",
    "zero_state",
]
