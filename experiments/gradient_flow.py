"""How the loss gradient reaches each step's hidden state, at T=784 (MNIST pixels).

    python -m experiments.gradient_flow --quick    # units 16, batch 4, 5 training steps
    python -m experiments.gradient_flow            # units 128, batch 16, 300 training steps

For a vanilla RNN, a GRU and an LSTM reading one pixel per step: the norm of
dL/dh_t for every step t (L: the loss from the last output), at initialisation
and after `--train_steps` Adam steps (clipped to global norm 1). The vanilla
RNN's gradient vanishes over the 784 steps; gates do not help at
initialisation (a GRU's update gate starts near 0.5, an LSTM's forget gate near
sigmoid(1) = 0.73: the gradient shrinks by about that per step, to ~1e-160 for
the GRU) until training opens them; hence float64 (`--measure_dtype`: float32
flushes below ~1e-38 to 0), on copies of the trained layers.

How: `tfrnn.static_rnn(cell, steps)` in TF1's list form returns every step's
output as a tensor of its own, and for these cells the output *is* the state
fed on, so `tape.gradient(loss, outputs)` is dL/dh_t through every later step
(the stacked `[B, T, H]` of `return_all_states` would not do: nothing depends
on it). Checked against dL/d eps_t of a second unroll that adds a zero eps_t to
h_t at every step. For the LSTM, dL/dc_t too. Per step: the mean over the batch
of ||dL_b/dh_t||_2. Writes `gradient_flow[-quick].json` and `.png`.
"""

import time

from experiments import harness

NAME = "gradient_flow"
CELLS = ("rnn", "gru", "lstm")
FULL = dict(
    cells=list(CELLS), time_steps=harness.PIXELS, units=128, batch=16, train_steps=300,
    train_batch=64, test_examples=1000, learning_rate=1e-3, clip_norm=1.0, seed=0,
    measure_dtype="float64",
)  # fmt: skip
QUICK = dict(units=16, batch=4, train_steps=5, train_batch=16, test_examples=100)
HELP = dict(
    time_steps="T: T steps of 784/T consecutive pixels (784: one pixel)",
    batch="Test examples whose gradients are measured",
    measure_dtype="float32 or float64 (float32 flushes norms below ~1e-38 to 0)",
)


CHOICES = dict(cells=CELLS, measure_dtype=("float32", "float64"))
POSITIVE = ("units", "batch", "train_batch", "test_examples")


def check(s):
    harness.check_divides_784("time_steps", s["time_steps"])
    if s["train_steps"] < 0:
        raise ValueError("--train_steps must be >= 0")


def _loss(y, logits):
    import keras
    import tensorflow as tf

    return tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))


def tape_gradients(cell, dense, x, y):
    """dL/dh_t (and dL/dc_t for an LSTM), `{"h": [T, B, H], "c": ... or None}`,
    from the static unroll's per-step tensors."""
    import tensorflow as tf

    import tfrnn

    steps = tf.unstack(x, axis=1)
    with tf.GradientTape() as tape:
        outputs, _, all_states = tfrnn.static_rnn(cell, steps, return_all_states=True)
        loss = _loss(y, dense(outputs[-1]))
    targets = {"h": outputs}
    if len(tf.nest.flatten(all_states[0])) == 2:  # LSTM: [h, c]
        targets["c"] = [tf.nest.flatten(state)[1] for state in all_states]
    gradients = tape.gradient(loss, targets, unconnected_gradients="zero")
    return {"h": tf.stack(gradients["h"]), "c": tf.stack(gradients["c"]) if "c" in gradients else None}


def perturbation_gradients(cell, dense, x, y):
    """dL/d eps_t with h_t + eps_t (eps_t = 0) fed on: the true dL/dh_t, `[T, B, H]`,
    with tfrnn's step function, independently of `static_rnn`'s loop."""
    import tensorflow as tf

    import tfrnn
    from tfrnn import step

    steps = tf.unstack(x, axis=1)
    batch = x.shape[0]
    eps = [tf.zeros([batch, step.output_size(cell)], x.dtype) for _ in steps]
    with tf.GradientTape() as tape:
        tape.watch(eps)
        step_fn = step.step_function(cell)
        state = tfrnn.zero_state(cell, batch, x.dtype)
        for t, step_input in enumerate(steps):
            output, state = step_fn(step_input, state)
            leaves = tf.nest.flatten(state)
            if output is not leaves[0]:
                raise AssertionError("the cell's output is not its hidden state h")
            output = output + eps[t]
            state = tf.nest.pack_sequence_as(state, [output] + leaves[1:])
        loss = _loss(y, dense(output))
    return tf.stack(tape.gradient(loss, eps))


def per_step_norms(gradients):
    """`[T, B, H]` -> the mean over the batch of each example's L2 norm, `[T]`
    (scaled by the largest entry first: squares below ~1e-308 underflow)."""
    import tensorflow as tf

    largest = tf.reduce_max(tf.abs(gradients), axis=-1, keepdims=True)
    scaled = gradients / tf.where(largest > 0, largest, tf.ones_like(largest))
    norms = largest[..., 0] * tf.norm(scaled, axis=-1)
    return tf.reduce_mean(norms, axis=1).numpy().tolist()


def compare(tape_h, true_h):
    """Step by step: max |tape - true| / max |true| (0 where both are 0)."""
    import tensorflow as tf

    largest = lambda g: tf.reduce_max(tf.abs(tf.reshape(g, [g.shape[0], -1])), axis=1)  # noqa: E731
    difference, scale = largest(tape_h - true_h), largest(true_h)
    relative = tf.where(scale > 0, difference / tf.where(scale > 0, scale, 1), difference)
    worst = float(tf.reduce_max(relative))
    return {
        "method": "dL/d eps_t with h_t + eps_t, eps_t = 0, fed to the next step",
        "max_relative_difference": worst,
        "passed": worst < 1e-3,
    }


def twin(layer, x_shape, dtype):
    """A copy of a built Keras layer (cell or dense) computing in `dtype`, same weights."""
    import tensorflow as tf

    import tfrnn

    copy = type(layer).from_config({**layer.get_config(), "dtype": dtype})
    if hasattr(layer, "state_size"):
        tfrnn.static_rnn(copy, tf.zeros([1, 2, x_shape[-1]], dtype))
    else:
        copy(tf.zeros([1, x_shape[-1]], dtype))
    copy.set_weights(layer.get_weights())
    return copy


def measure(cell, dense, x, y, dtype="float64"):
    """Norms of dL/dh_t (and dL/dc_t), with the check, computed in `dtype`
    (on float64 copies of the layers by default)."""
    import tensorflow as tf

    from tfrnn import step

    if dtype != x.dtype.name:
        cell = twin(cell, x.shape, dtype)
        dense = twin(dense, [step.output_size(cell)], dtype)
        x = tf.cast(x, dtype)
    started = time.perf_counter()
    gradients = tape_gradients(cell, dense, x, y)
    norms = per_step_norms(gradients["h"])
    return {
        "grad_h_norm": norms,
        "grad_c_norm": None if gradients["c"] is None else per_step_norms(gradients["c"]),
        "gradient_seconds": time.perf_counter() - started,
        "check": compare(gradients["h"], perturbation_gradients(cell, dense, x, y)),
        "first_to_last_ratio": norms[0] / norms[-1] if norms[-1] else None,
        "zero_steps": sum(1 for v in norms if v == 0.0),
        "measure_dtype": dtype,
    }


def train_cell(name, s, arrays):
    """The cell and dense layer, and `train(steps)`, `accuracy()` for them."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tfrnn
    from tfrnn import models

    keras.utils.set_random_seed(s["seed"])
    cell, dense = models.make_cell(name, s["units"]), keras.layers.Dense(10)
    tfrnn.static_rnn(cell, tf.zeros([1, 2, harness.PIXELS // s["time_steps"]]))
    dense(tf.zeros([1, tfrnn.step.output_size(cell)]))
    forward = lambda x, training=False: dense(tfrnn.dynamic_rnn(cell, x)[0][:, -1])  # noqa: E731
    optimizer = keras.optimizers.Adam(s["learning_rate"], global_clipnorm=s["clip_norm"])
    variables = cell.trainable_variables + dense.trainable_variables
    step = harness.train_step(forward, optimizer, variables, from_logits=True)
    predict = tf.function(lambda x: tf.argmax(forward(x), -1), autograph=False)
    order = np.random.default_rng(s["seed"]).permutation(len(arrays.x_train))

    def train(steps):
        losses, batch = [], s["train_batch"]
        for i in range(steps):
            indices = np.take(order, range(i * batch, (i + 1) * batch), mode="wrap")
            x = harness.chunked_pixels(arrays.x_train[indices], s["time_steps"])
            losses.append(float(step(tf.constant(x), tf.constant(arrays.y_train[indices]))))
        return float(np.mean(losses[-20:])) if losses else None

    def accuracy():
        n = s["test_examples"]
        x = harness.chunked_pixels(arrays.x_test[:n], s["time_steps"])
        predicted = np.concatenate([predict(tf.constant(x[i : i + 500])).numpy()
                                    for i in range(0, n, 500)])  # fmt: skip
        return float(np.mean(predicted == arrays.y_test[:n]))

    return cell, dense, train, accuracy


def run_cell(name, s, arrays, log=print):
    """Two records (init, trained) for one cell."""
    import tensorflow as tf

    cell, dense, train, accuracy = train_cell(name, s, arrays)
    x = tf.constant(harness.chunked_pixels(arrays.x_test[: s["batch"]], s["time_steps"]))
    y = tf.constant(arrays.y_test[: s["batch"]])
    keys = ("batch", "train_batch", "learning_rate", "clip_norm", "seed", "test_examples")
    config = dict(cell=name, units=s["units"], T=s["time_steps"], F=harness.PIXELS // s["time_steps"],
                  sequence="mnist pixels in chunks: T steps of F = 784/T consecutive pixels",
                  **{k: s[k] for k in keys},
                  norm="mean over the batch of ||dL_b/dh_t||_2, L = sum of the examples' losses")
    records = []
    for phase, steps in (("init", 0), ("trained", s["train_steps"])):
        started = time.perf_counter()
        loss = train(steps)
        values = dict(phase=phase, train_steps=steps, train_loss=loss,
                      train_seconds=time.perf_counter() - started, test_accuracy=accuracy(),
                      **measure(cell, dense, x, y, s["measure_dtype"]))  # fmt: skip
        records.append(harness.Record(NAME, config, values=values).flat())
        log(f"{name}, {phase}: test accuracy {values['test_accuracy']:.3f}, "
            f"dL/dh_1 / dL/dh_T = {harness.fmt(values['first_to_last_ratio'])}")  # fmt: skip
    return records


COLUMNS = ("cell", "phase", "test_accuracy", ("dL/dh_1", lambda r: r["grad_h_norm"][0]),
           ("dL/dh_T", lambda r: r["grad_h_norm"][-1]), ("ratio", lambda r: r["first_to_last_ratio"]),
           ("check", lambda r: r["check"]["max_relative_difference"]))  # fmt: skip


def run(s, output, quick, log=print):
    from tfrnn import data

    paths = harness.result_paths(output, NAME, quick, "json", "png")
    arrays, records = data.load_arrays("mnist"), []
    for name in s["cells"]:
        records += run_cell(name, s, arrays, log)
        harness.write_json(paths["json"], records)
    plot(records, paths["png"])
    log(harness.table(records, COLUMNS))
    return paths


def plot(records, path):
    """The norms against the step: h, and an LSTM's c beside; solid at
    initialisation, dashed after training (a norm of 0 is left out)."""
    colors = dict(zip(CELLS, ("tab:red", "tab:green", "tab:blue")))
    series = []
    for r in records:
        c = r["grad_c_norm"] or [None] * len(r["grad_h_norm"])
        points = [{"x": t + 1, "grad_h_norm": h, "grad_c_norm": c[t]}
                  for t, h in enumerate(r["grad_h_norm"])]
        when = "initialisation" if r["phase"] == "init" else f"after {r['train_steps']} steps"
        style = dict(color=colors[r["cell"]], ls="-" if r["phase"] == "init" else "--", marker=None)
        series.append((f"{r['cell']}, {when}", points, style))
    title = ("Gradient of the loss (from the last output) w.r.t. each step's state: MNIST, "
             "T={T} steps of {F} pixel(s), {units} units, mean over {batch} test examples, "
             "in {measure_dtype}").format(**records[0])
    harness.plot(path, ["grad_h_norm", "grad_c_norm"], series, title, "step t", xscale="linear")


if __name__ == "__main__":
    harness.main(__import__(__name__))
