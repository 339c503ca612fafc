"""The fused kernels (`tfrnn.fused`) equal the generic loop, values and gradients.

The reference is `dynamic_rnn(kernel="generic")`: the cell's own step in a
while loop, differentiated by TensorFlow, a path that shares no code with
the fused kernels. "Within 2e-6" is per tensor: the largest difference over
the largest magnitude of the reference (sums run in another order, so an
element-wise ratio says nothing where terms cancel). Gradients are taken
with respect to the inputs, every weight and the initial state, of a loss
that reads every result (outputs, final state, every step's state).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfrnn
from tfrnn import fused

B, T, F, H = 4, 7, 3, 5
TOLERANCE = 2e-6

CELLS = {
    "keras-lstm": lambda: keras.layers.LSTMCell(H),
    "keras-lstm-no-bias": lambda: keras.layers.LSTMCell(H, use_bias=False),
    "keras-gru": lambda: keras.layers.GRUCell(H),
    "keras-gru-no-bias": lambda: keras.layers.GRUCell(H, use_bias=False),
    "keras-gru-reset-before": lambda: keras.layers.GRUCell(H, reset_after=False),
    "keras-gru-reset-before-no-bias": lambda: keras.layers.GRUCell(
        H, reset_after=False, use_bias=False
    ),
    "tfrnn-lstm": lambda: tfrnn.LSTMCell(H, forget_bias=1.0),
    "tfrnn-stack": lambda: tfrnn.MultiRNNCell(
        [tfrnn.LSTMCell(H), keras.layers.GRUCell(2)]
    ),
    "keras-stack": lambda: keras.layers.StackedRNNCells(
        [keras.layers.GRUCell(H, reset_after=False), keras.layers.LSTMCell(2)]
    ),
}

# (lengths, mask, initial state, unroll, return_sequences, time_major); lengths
# hold 0 and T; the mask drops steps anywhere, also before a row's last one.
CASES = {
    "full": (None, False, False, 1, True, False),
    "lengths-state-unroll3": ([T, 0, 3, 6], False, True, 3, True, False),
    "mask-lengths-unroll2-last": ([T, 5, 0, 2], True, True, 2, False, False),
    "mask-time-major-unroll9": (None, True, False, 9, True, True),
    "all-empty-last": ([0, 0, 0, 0], False, True, 1, False, False),
    "short-batch-unroll4": ([2, 3, 1, 0], False, False, 4, True, True),
}


def built(make, dtype=None, seed=0):
    """A cell of `make()` with weights drawn large enough to saturate some gates."""
    cell = make() if dtype is None else _with_dtype(make, dtype)
    cell.build((None, F))
    rng = np.random.default_rng(seed)
    for weight in cell.weights:
        weight.assign(rng.normal(size=weight.shape, scale=0.7))
    return cell


def _with_dtype(make, dtype):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)
    try:
        return make()
    finally:
        keras.config.set_dtype_policy(previous)


def arguments(cell, case, seed=1):
    """`(inputs, kwargs)` of `dynamic_rnn` for a case of CASES."""
    lengths, masked, with_state, unroll, return_sequences, time_major = CASES[case]
    rng = np.random.default_rng(seed)
    shape = (T, B, F) if time_major else (B, T, F)
    inputs = tf.constant(rng.normal(size=shape), tf.float32)
    kwargs = dict(unroll=unroll, return_sequences=return_sequences,
                  time_major=time_major, return_all_states=True)  # fmt: skip
    if lengths is not None:
        kwargs["sequence_length"] = lengths
    if masked:
        mask = rng.random((B, T)) > 0.3
        kwargs["mask"] = tf.constant(mask.T if time_major else mask)
    if with_state:
        kwargs["initial_state"] = tf.nest.map_structure(
            lambda s: tf.constant(rng.normal(size=s.shape), tf.float32),
            tfrnn.zero_state(cell, B),
        )
    return inputs, kwargs


def values_and_gradients(run, cell, inputs, kwargs, seed=2, weights=None, execution="eager"):
    """`(results, gradients)` of `run(cell, inputs, **kwargs)`, flat; the loss
    weighs every result element by a fixed random number. In a tf.function
    (`execution` "function", or "xla": `jit_compile=True`) the tape is
    inside it, as in a training step; lengths and mask are constants of the
    trace (XLA needs the lengths when it compiles)."""
    state = kwargs.pop("initial_state", None)
    weights = cell.trainable_weights if weights is None else weights
    rng = np.random.default_rng(seed)
    projections = []

    def compute(inputs, state):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            if state is not None:
                tape.watch(state)
            results = tf.nest.flatten(run(cell, inputs, initial_state=state, **kwargs))
            if not projections:
                projections.extend(rng.normal(size=r.shape).astype("float32") for r in results)
            loss = sum(
                tf.reduce_sum(tf.cast(r, tf.float32) * p) for r, p in zip(results, projections)
            )
        sources = [inputs, weights] + ([state] if state is not None else [])
        return results, tf.nest.flatten(tape.gradient(loss, sources))

    if execution != "eager":
        compute = tf.function(compute, jit_compile=execution == "xla")
    results, gradients = compute(inputs, state)
    return [r.numpy() for r in results], [g.numpy() for g in gradients]


def relative_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return np.max(np.abs(a - b), initial=0.0) / max(np.max(np.abs(b), initial=0.0), 1e-6)


def assert_close(got, expected, tolerance=TOLERANCE, what=""):
    assert len(got) == len(expected)
    worst = max(relative_difference(a, b) for a, b in zip(got, expected))
    assert worst <= tolerance, f"{what}: relative difference {worst:.2e}"


def kernel_run(kernel):
    return lambda cell, inputs, **kwargs: tfrnn.dynamic_rnn(cell, inputs, kernel=kernel, **kwargs)


def compare(cell, case, execution="eager"):
    inputs, kwargs = arguments(cell, case)
    expected = values_and_gradients(kernel_run("generic"), cell, inputs, dict(kwargs),
                                    execution=execution)
    got = values_and_gradients(kernel_run("fused"), cell, inputs, dict(kwargs),
                               execution=execution)  # fmt: skip
    assert_close(got[0], expected[0], what=f"values, {case}, {execution}")
    assert_close(got[1], expected[1], what=f"gradients, {case}, {execution}")
    return got


@pytest.mark.parametrize("name", CELLS)
def test_equals_the_generic_loop(name):
    """Every cell, every case, eager: values and gradients within 2e-6."""
    cell = built(CELLS[name])
    for case in CASES:
        compare(cell, case)


@pytest.mark.parametrize(
    "name, case, execution",
    [
        ("tfrnn-stack", "mask-lengths-unroll2-last", "function"),
        ("keras-gru-reset-before", "lengths-state-unroll3", "function"),
        ("keras-lstm", "mask-lengths-unroll2-last", "xla"),
        ("keras-gru", "lengths-state-unroll3", "xla"),
    ],
)
def test_equals_the_generic_loop_in_tf_function_and_xla(name, case, execution):
    compare(built(CELLS[name]), case, execution)


def test_results_follow_the_padding_rule():
    """Independent of the generic loop: zeros past each row's length, the
    final state at the row's last step, copies of it in every later state."""
    cell = built(CELLS["keras-lstm"])
    inputs, kwargs = arguments(cell, "lengths-state-unroll3")
    outputs, (h, c), (hs, cs) = tfrnn.dynamic_rnn(cell, inputs, kernel="fused", **kwargs)
    initial_h, initial_c = kwargs["initial_state"]
    for row, length in enumerate(kwargs["sequence_length"]):
        np.testing.assert_array_equal(outputs[row, length:], 0.0)
        last = max(length - 1, 0)  # a row of length 0 keeps its initial state
        expected_h = initial_h[row] if length == 0 else outputs[row, length - 1]
        np.testing.assert_array_equal(h[row], expected_h)
        if length == 0:
            np.testing.assert_array_equal(c[row], initial_c[row])
        for t in range(last, T):
            np.testing.assert_array_equal(hs[row, t], h[row])
            np.testing.assert_array_equal(cs[row, t], c[row])


def test_gradients_match_finite_differences():
    """An independent check of the hand-written gradient: float64, central
    differences of the loss along random directions of inputs and weights."""
    cell = built(lambda: keras.layers.GRUCell(3, dtype="float64"))
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(2, 5, F)))
    lengths = [5, 3]
    weights = [tf.constant(rng.normal(size=(2, 5, 3)))]

    def loss(x):
        outputs, _ = tfrnn.dynamic_rnn(cell, x, sequence_length=lengths, kernel="fused")
        return tf.reduce_sum(outputs * weights[0])

    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x)
    gradient, direction, eps = tape.gradient(value, x), rng.normal(size=x.shape), 1e-6
    numeric = (loss(x + eps * direction) - loss(x - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(np.sum(gradient * direction), numeric, rtol=1e-7)


def test_bidirectional_and_layer_equal_the_generic_loop():
    """Both directions (the backward one reads each row reversed within its
    length) and `tfrnn.RNN(go_backwards=True)` with a mask, in a tf.function."""
    cell_fw, cell_bw = built(CELLS["keras-lstm"]), built(CELLS["keras-gru"], seed=3)
    inputs, kwargs = arguments(cell_fw, "lengths-state-unroll3")
    lengths = kwargs["sequence_length"]

    def both(kernel):
        def run(cells, x, initial_state):
            return tfrnn.bidirectional_dynamic_rnn(
                cells[0], cells[1], x, sequence_length=lengths, unroll=2, kernel=kernel,
                return_all_states=True,
            )  # fmt: skip

        weights = cell_fw.trainable_weights + cell_bw.trainable_weights
        return values_and_gradients(run, (cell_fw, cell_bw), inputs, {}, weights=weights,
                                    execution="function")  # fmt: skip

    expected, got = both("generic"), both("fused")
    assert_close(got[0], expected[0], what="bidirectional values")
    assert_close(got[1], expected[1], what="bidirectional gradients")
    mask = tf.constant(np.random.default_rng(4).random((B, T)) > 0.3)

    def layer(kernel):
        rnn = tfrnn.RNN(cell_bw, go_backwards=True, return_sequences=True,
                        return_state=True, kernel=kernel)  # fmt: skip
        return values_and_gradients(
            lambda cell, x, initial_state: rnn(x, mask=mask), cell_bw, inputs, {},
            execution="function",
        )

    expected, got = layer("generic"), layer("fused")
    assert_close(got[0], expected[0], what="layer values")
    assert_close(got[1], expected[1], what="layer gradients")


def test_mixed_precision_equals_the_generic_loop_in_bfloat16():
    """`mixed_bfloat16`: computed in bfloat16 both ways (the same casts), so
    within bfloat16's precision (2^-8 relative per operation)."""
    cell = built(CELLS["keras-lstm"], dtype="mixed_bfloat16")
    inputs, kwargs = arguments(cell, "mask-lengths-unroll2-last")
    kwargs["initial_state"] = tf.nest.map_structure(
        lambda s: tf.cast(s, tf.bfloat16), kwargs["initial_state"]
    )
    expected = values_and_gradients(kernel_run("generic"), cell, inputs, dict(kwargs))
    got = values_and_gradients(kernel_run("fused"), cell, inputs, dict(kwargs))
    assert {r.dtype for r in got[0]} == {np.dtype(tf.bfloat16.as_numpy_dtype)}
    assert_close(got[0], expected[0], 0.03, "bfloat16 values")
    assert_close(got[1], expected[1], 0.03, "bfloat16 gradients")


def test_the_fused_kernel_does_not_call_the_cell():
    """What runs is the fused kernel: the cell's own call is never made."""
    cell = built(CELLS["tfrnn-stack"])
    inputs, kwargs = arguments(cell, "full")

    def refuse(*args, **kwargs):
        raise AssertionError("the cell's call ran")

    for layer in cell.cells:
        layer.call = refuse
    tfrnn.dynamic_rnn(cell, inputs, kernel="fused", **kwargs)
    with pytest.raises(AssertionError, match="the cell's call ran"):
        tfrnn.dynamic_rnn(cell, inputs, kernel="generic", **kwargs)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: tfrnn.LSTMCell(H, use_peepholes=True), "use_peepholes=True"),
        (lambda: tfrnn.LSTMCell(H, cell_clip=3.0), "cell_clip=3.0"),
        (lambda: tfrnn.LSTMCell(H, num_proj=2), "num_proj=2"),
        (lambda: keras.layers.LSTMCell(H, dropout=0.1), "LSTMCell with dropout"),
        (lambda: keras.layers.GRUCell(H, activation="relu"), "activations other than"),
        (lambda: keras.layers.SimpleRNNCell(H), "SimpleRNNCell is not one of the cells"),
        (lambda: tfrnn.DropoutWrapper(keras.layers.LSTMCell(H)), "DropoutWrapper is not"),
        (
            lambda: tfrnn.MultiRNNCell([keras.layers.LSTMCell(H), keras.layers.SimpleRNNCell(2)]),
            "layer 1 of the stack: SimpleRNNCell",
        ),
    ],
)
def test_fused_refuses_a_cell_it_cannot_fuse_and_auto_runs_the_generic_loop(make, reason):
    cell = make()
    x = tf.ones([2, 3, F])
    with pytest.raises(ValueError, match=f"kernel='fused' has no kernel for this cell: .*{reason}"):
        tfrnn.dynamic_rnn(cell, x, kernel="fused")
    with pytest.raises(ValueError, match=reason):
        tfrnn.RNN(cell, kernel="fused")
    outputs, _ = tfrnn.dynamic_rnn(cell, x, kernel="auto")
    assert outputs.shape[:2] == (2, 3)
    assert tfrnn.RNN(cell).kernel_ran == "generic"


def test_kernel_argument_is_checked():
    with pytest.raises(ValueError, match="kernel must be 'auto', 'fused' or 'generic'; got 'cudnn'"):
        tfrnn.dynamic_rnn(keras.layers.LSTMCell(2), tf.ones([1, 2, 3]), kernel="cudnn")
    with pytest.raises(ValueError, match="unroll='static' unrolls the cell"):
        tfrnn.RNN(keras.layers.LSTMCell(2), unroll="static", kernel="fused")


def test_auto_runs_fused_where_it_measured_faster():
    """The rule of `auto` (measured by experiments.kernels): a layer of at
    least AUTO_MIN_UNITS units, whatever the batch."""
    wide = fused.AUTO_MIN_UNITS
    assert fused.choose("auto", keras.layers.LSTMCell(wide)) == "fused"
    assert fused.choose("auto", keras.layers.GRUCell(wide)) == "fused"
    assert fused.choose("auto", keras.layers.LSTMCell(wide - 1)) == "generic"
    assert fused.choose("auto", tfrnn.MultiRNNCell([tfrnn.LSTMCell(8), tfrnn.LSTMCell(wide)])) == "fused"
    assert fused.choose("auto", tfrnn.MultiRNNCell([tfrnn.LSTMCell(8), tfrnn.LSTMCell(8)])) == "generic"
    assert fused.choose("generic", keras.layers.LSTMCell(wide)) == "generic"
    assert fused.choose("fused", keras.layers.LSTMCell(8)) == "fused"
    layer = tfrnn.RNN(keras.layers.LSTMCell(wide), unroll=3)
    assert layer.kernel_ran == "fused"
    layer(tf.zeros([1024, 2, 3]))
    assert layer.kernel_ran == "fused"
    assert tfrnn.RNN(keras.layers.LSTMCell(wide - 1)).kernel_ran == "generic"
    assert tfrnn.RNN(keras.layers.GRUCell(wide), unroll="static").kernel_ran == "generic"


def test_layer_keeps_its_kernel_in_its_config_and_in_bidirectional():
    layer = tfrnn.RNN(keras.layers.GRUCell(4), kernel="fused", return_sequences=True)
    assert tfrnn.RNN.from_config(layer.get_config()).kernel == "fused"
    both = keras.layers.Bidirectional(layer)
    assert both.backward_layer.kernel == "fused" and both.backward_layer.go_backwards
    outputs = both(tf.ones([2, 3, F]))
    assert outputs.shape == (2, 3, 8) and both.backward_layer.kernel_ran == "fused"


def test_one_trace_serves_every_batch_and_length():
    """Batch and time unknown while tracing (a `None` signature), as the
    generic loop: the fused kernel's results for two shapes from one trace."""
    cell = built(CELLS["keras-gru"])
    signature = [tf.TensorSpec([None, None, F]), tf.TensorSpec([None], tf.int32)]
    runs = {
        kernel: tf.function(
            lambda x, n, kernel=kernel: tfrnn.dynamic_rnn(cell, x, sequence_length=n, kernel=kernel),
            input_signature=signature,
        )
        for kernel in ("generic", "fused")
    }  # fmt: skip
    for batch, time_steps in ((3, 5), (2, 9)):
        x = tf.random.normal([batch, time_steps, F])
        n = tf.constant([time_steps, 0, 2][:batch])
        assert_close(tf.nest.flatten(runs["fused"](x, n)), tf.nest.flatten(runs["generic"](x, n)))
    assert runs["fused"].experimental_get_tracing_count() == 1


@pytest.mark.parametrize("make", [keras.layers.LSTMCell, keras.layers.GRUCell])
def test_a_model_running_the_fused_kernel_exports_and_reloads(tmp_path, make):
    """A model whose layer runs fused saves as a SavedModel (its gradient
    function captures only tensors, no TensorArray) and, reloaded, gives the
    same outputs."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, F))
    model = keras.Model(inputs, tfrnn.RNN(make(8), kernel="fused", return_sequences=True)(inputs))
    x = tf.random.normal([2, 5, F], seed=1)
    model.export(str(tmp_path / "saved"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.serve(x), model(x), rtol=1e-6)
