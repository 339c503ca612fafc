"""tfrnn.RNN inside Keras: Bidirectional, models, fit, .keras files, export, precision.

`Bidirectional(tfrnn.RNN(...))` is checked against Keras's own
`Bidirectional(keras.layers.RNN(...))` with the same weights; a `.keras` round
trip must give the same predictions to the bit; a small masked task must be
learnt by `fit`.
"""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from conftest import random_inputs
from test_layer import assert_close
from test_layer import random_mask

B, T, F, H = 4, 6, 3, 5
MERGE_MODES = ["concat", "sum", "mul", "ave", None]


def bidirectional_pair(cell, merge_mode, **flags):
    """Bidirectional over tfrnn.RNN and over keras.layers.RNN, weights shared."""
    ours = keras.layers.Bidirectional(tfrnn.RNN(cell(), **flags), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(
        keras.layers.RNN(cell(), **flags), merge_mode=merge_mode
    )
    inputs = random_inputs(B, T, F, seed=7)
    ours(inputs), theirs(inputs)  # builds both
    theirs.set_weights(ours.get_weights())
    return ours, theirs, inputs


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [True, False], ids=["seq", "last"])
def test_bidirectional_equals_keras_bidirectional(merge_mode, return_sequences):
    """All merge modes, with `return_state` and a random mask. Keras's
    Bidirectional zeroes masked outputs when returning sequences and returns
    the last valid output otherwise: tfrnn's rule in both cases."""
    ours, theirs, inputs = bidirectional_pair(
        lambda: keras.layers.LSTMCell(H),
        merge_mode,
        return_sequences=return_sequences,
        return_state=True,
    )
    mask = random_mask(seed=8)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        got, want = ours(inputs, mask=mask), theirs(inputs, mask=mask)
        got_loss, want_loss = (
            tf.add_n([tf.reduce_sum(x * x) for x in tf.nest.flatten(r)])
            for r in (got, want)
        )
    assert len(got) == len(want)  # output(s), forward h, c, backward h, c
    assert_close(got, want)
    got_grads = tape.gradient(got_loss, [inputs, *ours.trainable_variables])
    want_grads = tape.gradient(want_loss, [inputs, *theirs.trainable_variables])
    assert_close(got_grads, want_grads)


def test_bidirectional_takes_initial_states_and_unrolls():
    """Forward and backward initial states (first half, second half), and a
    static and a partly unrolled direction (config cloned by Bidirectional)."""
    states = [tf.random.normal([B, H], seed=s) for s in range(4)]
    mask = random_mask(seed=9)
    for unroll in ("static", 3):
        ours, theirs, inputs = bidirectional_pair(
            lambda: keras.layers.LSTMCell(H),
            "concat",
            return_sequences=True,
            return_state=True,
        )
        ours = keras.layers.Bidirectional(
            tfrnn.RNN(
                ours.forward_layer.cell,
                unroll=unroll,
                return_sequences=True,
                return_state=True,
            )
        )
        ours(inputs)
        ours.set_weights(theirs.get_weights())
        assert ours.backward_layer.unroll == unroll
        assert_close(
            ours(inputs, initial_state=states, mask=mask),
            theirs(inputs, initial_state=states, mask=mask),
        )


def masked_model(unroll="dynamic", bidirectional=False, vocabulary=10, time=10):
    """Embedding(mask_zero=True) -> tfrnn.RNN -> Dense (static: for `time` steps)."""
    rnn = tfrnn.RNN(keras.layers.GRUCell(16), unroll=unroll)
    if bidirectional:
        rnn = keras.layers.Bidirectional(rnn)
    inputs = keras.Input((time if unroll == "static" else None,), dtype="int32")
    x = keras.layers.Embedding(vocabulary + 1, 8, mask_zero=True)(inputs)
    outputs = keras.layers.Dense(2, activation="softmax")(rnn(x))
    return keras.Model(inputs, outputs)


def first_token_task(examples, time=10, vocabulary=10, seed=0):
    """Right-padded token rows of random length; the label: is the first token
    above vocabulary/2. Only a row's last valid output can know it: its last
    step's output is zeros under tfrnn's rule for every padded row."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, vocabulary + 1, size=(examples, time))
    lengths = rng.integers(1, time + 1, size=examples)
    tokens[np.arange(time)[None, :] >= lengths[:, None]] = 0
    return tokens.astype("int32"), (tokens[:, 0] > vocabulary // 2).astype("int32")


def test_fit_learns_a_masked_task():
    """Accuracy >= 0.95 on held-out rows after 8 epochs of 1,024 rows
    (measured 1.00 for this seed)."""
    x, y = first_token_task(1024)
    x_test, y_test = first_token_task(256, seed=1)
    model = masked_model()
    model.compile(
        keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95
    predicted = model.predict(x_test, verbose=0).argmax(-1)
    assert np.mean(predicted == y_test) == pytest.approx(accuracy)


def test_sequential_model_propagates_the_mask_as_keras_does():
    """Masking -> RNN(return_sequences) -> RNN: the second layer sees the
    first's mask; equal to the same chain of keras.layers.RNN."""
    x = random_inputs(B, T, F, seed=10).numpy()
    x[2, 3:] = 0.0  # steps Masking drops
    x[3, :2] = 0.0

    def chain(rnn, **keras_flags):
        return keras.Sequential(
            [
                keras.Input((T, F)),
                keras.layers.Masking(0.0),
                rnn(keras.layers.GRUCell(H), return_sequences=True, **keras_flags),
                rnn(keras.layers.LSTMCell(4)),
            ]
        )

    ours = chain(tfrnn.RNN)
    theirs = chain(keras.layers.RNN, zero_output_for_mask=True)
    theirs.set_weights(ours.get_weights())
    assert_close(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))


def test_every_steps_state_in_a_functional_model():
    """`return_all_states` as model outputs: every step's `h` and `c`."""
    inputs = keras.Input((None, F))
    output, all_h, all_c = tfrnn.RNN(
        keras.layers.LSTMCell(H), return_sequences=True, return_all_states=True
    )(inputs)
    model = keras.Model(inputs, [output, all_h, all_c])
    got_output, got_h, got_c = model.predict(random_inputs(B, T, F), verbose=0)
    assert got_h.shape == got_c.shape == (B, T, H)
    assert_close(got_output, got_h)  # an LSTM's output is its h at every step


def test_functional_encoder_decoder_with_state_and_length_inputs():
    """The encoder's final states start the decoder (`initial_state` from
    Keras tensors), and lengths come in as a model input; equal to the same
    model on keras.layers.RNN with the lengths as a mask."""
    sequences, lengths = keras.Input((None, F)), keras.Input((), dtype="int32")
    _, *states = tfrnn.RNN(keras.layers.LSTMCell(H), return_state=True)(
        sequences, sequence_length=lengths
    )
    decoded = tfrnn.RNN(keras.layers.LSTMCell(H), return_sequences=True)(
        sequences, initial_state=states
    )
    model = keras.Model([sequences, lengths], decoded)
    x, n = random_inputs(B, T, F, seed=11), np.array([T, 0, 3, 1], "int32")
    mask = tf.sequence_mask(n, T)
    encoder, decoder = (layer.cell for layer in model.layers[-2:])
    _, *want_states = keras.layers.RNN(encoder, return_state=True)(x, mask=mask)
    want = keras.layers.RNN(decoder, return_sequences=True)(
        x, initial_state=want_states
    )
    assert_close(model.predict([x, n], verbose=0), want)


def test_cell_dropout_only_in_training():
    """A Keras cell's dropout: none with training=False (equal to Keras's
    layer), one mask per sequence with training=True."""
    cell = keras.layers.GRUCell(H, dropout=0.5, recurrent_dropout=0.5)
    x = random_inputs(B, T, F, seed=12)
    layer = tfrnn.RNN(cell, return_sequences=True)
    inference = layer(x, training=False)
    assert_close(inference, keras.layers.RNN(cell, return_sequences=True)(x))
    assert np.max(np.abs(layer(x, training=True) - inference)) > 1e-3


# Saving a .keras file warns from Keras's own convert_to_numpy (numpy 2's
# __array__ copy warning), for a keras.layers.GRU model as well.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("unroll", ["dynamic", "static", 4])
def test_keras_file_round_trip_is_bit_equal(tmp_path, unroll):
    inputs = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(11, 4, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(
        tfrnn.RNN(tfrnn.LSTMCell(H, use_peepholes=True), unroll, return_sequences=True)
    )(x)
    stack = tfrnn.MultiRNNCell([keras.layers.GRUCell(H), tfrnn.LSTMCell(3)])
    output, *states = tfrnn.RNN(stack, unroll, return_state=True, go_backwards=True)(x)
    model = keras.Model(inputs, [output, *tf.nest.flatten(states)])
    tokens, _ = first_token_task(4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    want = model.predict(tokens, verbose=0)
    for got, expected in zip(loaded.predict(tokens, verbose=0), want):
        np.testing.assert_array_equal(got, expected)
    layer = loaded.layers[-1]
    assert isinstance(layer, tfrnn.RNN)
    assert layer.unroll == unroll and layer.go_backwards


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize(
    "imports",
    ["import keras, tfrnn", "import tfrnn, keras", "import tfrnn\nimport tensorflow\nimport keras"],
)
def test_a_keras_file_loads_after_import_tfrnn_alone(tmp_path, imports):
    """A fresh process that imports tfrnn, in any order with Keras, and touches
    none of its names loads a `.keras` file holding tfrnn's layer and cells."""
    model = keras.Sequential([keras.Input((4, 3)), tfrnn.RNN(tfrnn.LSTMCell(2))])
    model.save(tmp_path / "model.keras")
    code = f"{imports}\nmodel = keras.saving.load_model({str(tmp_path / 'model.keras')!r})\n"
    code += "print(type(model.layers[0]).__module__, type(model.layers[0].cell).__module__)"
    root = pathlib.Path(__file__).resolve().parents[1]
    process = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert process.returncode == 0, process.stderr[-2000:]
    assert process.stdout.split() == ["tfrnn.layer", "tfrnn.cells"]


@pytest.mark.parametrize("unroll", ["dynamic", "static"])
def test_exported_saved_model_serves_the_same_predictions(tmp_path, unroll):
    model = masked_model(unroll, bidirectional=True)
    tokens, _ = first_token_task(4)
    model.export(str(tmp_path / "export"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    served = loaded.serve
    assert_close(served(tokens), model.predict(tokens, verbose=0))
    if unroll == "static":  # its signature keeps T=10
        with pytest.raises((ValueError, TypeError)):
            served(tokens[:, :7])
    else:
        assert served(tokens[:, :7]).shape == (4, 2)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_outputs_in_the_compute_dtype(policy):
    """Every output (sequence, final and per-step states) in float16 or
    bfloat16, and close to the float32 layer with the same weights."""
    inputs, mask = random_inputs(B, T, F), random_mask()
    flags = dict(return_sequences=True, return_state=True, return_all_states=True)
    reference = tfrnn.RNN(keras.layers.LSTMCell(H), **flags)
    want = reference(inputs, mask=mask)
    keras.config.set_dtype_policy(policy)
    try:
        layer = tfrnn.RNN(keras.layers.LSTMCell(H), **flags)
        layer(inputs, mask=mask)
        layer.set_weights(reference.get_weights())
        got = layer(inputs, mask=mask)
    finally:
        keras.config.set_dtype_policy("float32")
    dtype = policy.split("_")[1]
    assert {x.dtype.name for x in got} == {dtype}
    assert_close(got, want, tol=5e-2 if dtype == "bfloat16" else 5e-3)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_training_step(policy):
    """A masked Bidirectional model trains under the policy (float16 with
    Keras's loss scaling): finite loss, predictions in the compute dtype."""
    x, y = first_token_task(32, time=5)
    keras.config.set_dtype_policy(policy)
    try:
        model = masked_model(bidirectional=True)
        model.compile("adam", loss="sparse_categorical_crossentropy")
        loss = model.train_on_batch(x, y)
        predictions = model(x)
    finally:
        keras.config.set_dtype_policy("float32")
    assert np.isfinite(loss)
    assert predictions.dtype.name == policy.split("_")[1]


@pytest.mark.parametrize("unroll", ["dynamic", "static"])
def test_xla_compiled_training_step_equals_the_plain_one(unroll):
    """`jit_compile=True`: the same loss and weights after a training step."""
    x, y = first_token_task(32, time=4)
    results = {}
    for jit_compile in (False, True):
        keras.utils.set_random_seed(5)
        model = masked_model(unroll, time=4)
        model.compile(
            "adam", "sparse_categorical_crossentropy", jit_compile=jit_compile
        )
        losses = [model.train_on_batch(x, y)]
        results[jit_compile] = losses + [w.numpy() for w in model.weights]
    assert_close(results[True], results[False], tol=1e-5)
