"""The character model: ids and the state in, next-character logits and the
state out, so that the caller carries the state from chunk to chunk.

    ids [batch, time] -> Embedding -> tfrnn.RNN "rnn" (every step's output,
    the final state) -> Dense "characters" -> logits [batch, time, vocabulary]

The state goes in and out as its flat leaves (`[h, c]` for an LSTM, layer
after layer for a stack), one model input and output each.
"""

import keras
import tensorflow as tf

from tfrnn.training.models import make_cell
from tfrnn.training.models import recurrence

EMBEDDING = 64  # features per character fed to the cell


def state_sizes(cell):
    """The sizes of the flat leaves of `cell`'s state."""
    return [int(size) for size in tf.nest.flatten(cell.state_size)]


def build_language_model(config, vocabulary_size, time_steps, mode=None):
    """The model of `config` over `vocabulary_size` characters: inputs
    `[ids, *state leaves]`, outputs `[logits, *state leaves]`. `mode`
    overrides `config.mode` (the export's one-step model is dynamic)."""
    mode = mode or config.mode
    unroll = config.unroll if mode == "dynamic" else 1
    cell = make_cell(config.cell, config.units, config.layers, dtype=config.precision)
    ids = keras.Input((time_steps if mode == "static" else None,), dtype="int32", name="ids")
    states = [keras.Input((size,), name=f"state_{i}") for i, size in enumerate(state_sizes(cell))]
    x = keras.layers.Embedding(vocabulary_size, EMBEDDING, name="embedding")(ids)
    layer = recurrence(cell, mode, unroll, dtype=config.precision, kernel=config.kernel,
                       return_sequences=True, return_state=True)  # fmt: skip
    outputs, *final_state = layer(x, initial_state=states)
    logits = keras.layers.Dense(vocabulary_size, name="characters", dtype="float32")(outputs)
    return keras.Model([ids, *states], [logits, *tf.nest.flatten(final_state)],
                       name=f"{mode}_{config.cell}_language_model")  # fmt: skip


def next_characters(model, ids, *state):
    """`{"log_probabilities": [batch, time, vocabulary], "state_i": ...}`:
    the next character's log-probabilities after each of `ids` and the
    float32 state after the last, from `state` (what the export serves and
    sampling reads)."""
    logits, *final_state = model([ids, *state], training=False)
    return {
        "log_probabilities": tf.nn.log_softmax(logits),
        **{f"state_{i}": tf.cast(leaf, tf.float32) for i, leaf in enumerate(final_state)},
    }
