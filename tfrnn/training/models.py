"""What every task's model is built from: a cell by name, the recurrence (a
`tfrnn.RNN` layer named "rnn", or two in `Bidirectional`), and what the
report reads back from it."""

import keras
import tensorflow as tf

from tfrnn import cells
from tfrnn.layer import RNN
from tfrnn.training.config import RunConfig

CELLS = RunConfig.CHOICES["cell"]


def make_cell(cell, units, layers=1, dtype=None):
    """A cell by name; `layers > 1` stacks them in a `tfrnn.MultiRNNCell`.
    `dtype`: the cells' Keras dtype policy (e.g. "mixed_bfloat16")."""
    makers = {
        "rnn": lambda: keras.layers.SimpleRNNCell(units, dtype=dtype),
        "gru": lambda: keras.layers.GRUCell(units, dtype=dtype),
        "lstm": lambda: cells.LSTMCell(units, dtype=dtype),
        "peephole_lstm": lambda: cells.LSTMCell(
            units, use_peepholes=True, dtype=dtype
        ),
    }
    if cell not in makers:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    if layers < 1:
        raise ValueError(f"layers must be >= 1; got {layers}")
    if layers == 1:
        return makers[cell]()
    return cells.MultiRNNCell([makers[cell]() for _ in range(layers)], dtype=dtype)


def recurrence(cell, mode="dynamic", unroll=1, bidirectional=False, dtype=None,
               kernel="auto", **kwargs):
    """A model's recurrent layer, named "rnn": `tfrnn.RNN` (by default
    returning each row's last output; `kwargs`: its other arguments, e.g.
    `return_sequences`), in `Bidirectional` when asked. `kernel` applies to
    the dynamic modes (a static unroll runs the cell's own step)."""
    if mode != "dynamic" and unroll != 1:
        raise ValueError(
            f"unroll={unroll} applies to mode='dynamic' (static is k = T); "
            "use mode='dynamic' or unroll=1"
        )
    if mode == "static":
        layer_unroll, kernel = "static", "generic" if kernel == "auto" else kernel
    else:
        layer_unroll = "dynamic" if unroll == 1 else unroll
    kwargs["kernel"] = kernel
    if not bidirectional:
        return RNN(cell, unroll=layer_unroll, name="rnn", dtype=dtype, **kwargs)
    return keras.layers.Bidirectional(
        RNN(cell, unroll=layer_unroll, dtype=dtype, **kwargs), name="rnn", dtype=dtype
    )


def recurrent_layers(model):
    """The `tfrnn.RNN` layers of a model's "rnn" layer: `[forward]`, or
    `[forward, backward]` when it is bidirectional."""
    layer = model.get_layer("rnn")
    if isinstance(layer, keras.layers.Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def count_parameters(model):
    return int(sum(tf.size(v).numpy() for v in model.trainable_variables))
