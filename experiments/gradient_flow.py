"""How the loss gradient reaches each step's hidden state, at T=784 (MNIST pixels).

    python -m experiments.gradient_flow --quick    # units 16, batch 4, 5 training steps
    python -m experiments.gradient_flow            # units 128, batch 16, 300 training steps

For a vanilla RNN, a GRU and an LSTM reading one pixel per step: for every step
t, the mean over the batch of ||dL_b/dh_t||_2 (and of dL_b/dc_t for the LSTM),
L the loss from the last output, at initialisation and after `--train_steps`
Adam steps (clipped to global norm 1). The vanilla RNN's gradient vanishes over
the 784 steps; gates do not help at initialisation (a GRU's update gate starts
near 0.5, an LSTM's forget gate near sigmoid(1) = 0.73: the gradient shrinks by
about that per step, to ~1e-160 for the GRU) until training opens them; hence
float64 copies of the layers for the measurement (float32 flushes below ~1e-38
to 0). dL/dh_t: `tape.gradient(loss, outputs[t])` of `tfrnn.static_rnn` in
TF1's list form, whose per-step tensors are those fed on (tests/test_semantics.py
checks it). Writes `gradient_flow[-quick].json` and `.png`.
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


def per_step_norms(gradients):
    """T tensors `[B, H]` -> the mean over the batch of each example's L2 norm,
    `[T]` (scaled by the largest entry first: squares below ~1e-308 underflow)."""
    import tensorflow as tf

    gradients = tf.stack(gradients)
    largest = tf.reduce_max(tf.abs(gradients), axis=-1, keepdims=True)
    norms = largest[..., 0] * tf.norm(gradients / tf.where(largest > 0, largest, 1), axis=-1)
    return tf.reduce_mean(norms, axis=1).numpy().tolist()


def twin(layer, features, dtype):
    """A copy of a built cell or Dense layer computing in `dtype`, same weights."""
    copy = type(layer).from_config({**layer.get_config(), "dtype": dtype})
    copy.build((None, features))
    copy.set_weights(layer.get_weights())
    return copy


def measure(cell, dense, x, y, dtype="float64"):
    """The per-step norms of dL/dh_t (and dL/dc_t for an LSTM), on copies of
    `cell` and `dense` computing in `dtype`; L: the sum of the examples' losses."""
    import keras
    import tensorflow as tf

    import tfrnn

    cell, x = twin(cell, x.shape[-1], dtype), tf.cast(x, dtype)
    dense = twin(dense, dense.kernel.shape[0], dtype)
    started = time.perf_counter()
    with tf.GradientTape() as tape:
        outputs, _, states = tfrnn.static_rnn(cell, tf.unstack(x, axis=1), return_all_states=True)
        logits = dense(outputs[-1])
        loss = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(y, logits, True))
    targets = {"h": outputs, "c": [tf.nest.flatten(state)[1:] for state in states]}
    gradients = tape.gradient(loss, targets, unconnected_gradients="zero")
    h = per_step_norms(gradients["h"])
    c = per_step_norms([g[0] for g in gradients["c"]]) if gradients["c"][0] else None
    return dict(grad_h_norm=h, grad_c_norm=c, gradient_seconds=time.perf_counter() - started,
                first_to_last_ratio=h[0] / h[-1] if h[-1] else None, zero_steps=h.count(0.0),
                measure_dtype=dtype)  # fmt: skip


def train_cell(name, s, arrays):
    """The cell and its Dense(10), `train(steps) -> mean loss of the last 20`
    (Adam on batches in a fixed random order) and `accuracy()` on the test set."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tfrnn
    from tfrnn.training import models

    keras.utils.set_random_seed(s["seed"])
    cell, dense = models.make_cell(name, s["units"]), keras.layers.Dense(10)
    cell.build((None, harness.PIXELS // s["time_steps"]))
    dense.build((None, s["units"]))
    forward = lambda x, training=False: dense(tfrnn.dynamic_rnn(cell, x)[0][:, -1])  # noqa: E731
    optimizer = keras.optimizers.Adam(s["learning_rate"], global_clipnorm=s["clip_norm"])
    variables = cell.trainable_variables + dense.trainable_variables
    step = harness.train_step(forward, optimizer, variables, from_logits=True)
    predict = tf.function(lambda x: tf.argmax(forward(x), -1), autograph=False)
    order = np.random.default_rng(s["seed"]).permutation(len(arrays.y_train))
    pixels = lambda x: tf.constant(harness.chunked_pixels(x, s["time_steps"]))  # noqa: E731

    def train(steps, n=s["train_batch"]):
        batches = [np.take(order, range(i * n, (i + 1) * n), mode="wrap") for i in range(steps)]
        losses = [float(step(pixels(arrays.x_train[i]), arrays.y_train[i])) for i in batches]
        return float(np.mean(losses[-20:])) if losses else None

    def accuracy(n=s["test_examples"]):
        return float(np.mean(predict(pixels(arrays.x_test[:n])).numpy() == arrays.y_test[:n]))

    return cell, dense, train, accuracy


def run_cell(name, s, arrays, log=print):
    """Two records for one cell: at initialisation and after training."""
    cell, dense, train, accuracy = train_cell(name, s, arrays)
    x = harness.chunked_pixels(arrays.x_test[: s["batch"]], s["time_steps"])
    y = arrays.y_test[: s["batch"]]
    keys = ("units", "batch", "train_batch", "learning_rate", "clip_norm", "seed", "test_examples")
    config = dict(cell=name, T=s["time_steps"], F=harness.PIXELS // s["time_steps"],
                  **{k: s[k] for k in keys},
                  norm="mean over the batch of ||dL_b/dh_t||_2, L = sum of the examples' losses")
    records = []
    for phase, steps in (("init", 0), ("trained", s["train_steps"])):
        started = time.perf_counter()
        values = dict(phase=phase, train_steps=steps, train_loss=train(steps),
                      train_seconds=time.perf_counter() - started, test_accuracy=accuracy(),
                      **measure(cell, dense, x, y, s["measure_dtype"]))  # fmt: skip
        records.append(harness.Record(NAME, config, values=values).flat())
        log(f"{name}, {phase}: test accuracy {values['test_accuracy']:.3f}, "
            f"dL/dh_1 / dL/dh_T = {harness.fmt(values['first_to_last_ratio'])}")  # fmt: skip
    return records


COLUMNS = ("cell", "phase", "test_accuracy", ("dL/dh_1", lambda r: r["grad_h_norm"][0]),
           ("dL/dh_T", lambda r: r["grad_h_norm"][-1]), "first_to_last_ratio", "zero_steps")


def run(s, output, quick, log=print):
    from tfrnn.tasks.classify import data

    paths = harness.result_paths(output, NAME, quick, "json", "png")
    arrays, records = data.load_arrays("mnist"), []
    for name in s["cells"]:
        records += run_cell(name, s, arrays, log)
        harness.write_json(paths["json"], records)
    plot(records, paths["png"])
    log(harness.table(records, COLUMNS))
    return paths


def plot(records, path):
    """Norms against the step, h and an LSTM's c side by side: solid at
    initialisation, dashed after training (a norm of 0 is left out)."""
    colors, series = dict(zip(CELLS, ("tab:red", "tab:green", "tab:blue"))), []
    for r in records:
        c = r["grad_c_norm"] or [None] * len(r["grad_h_norm"])
        points = [dict(x=t + 1, grad_h_norm=h, grad_c_norm=c[t])
                  for t, h in enumerate(r["grad_h_norm"])]  # fmt: skip
        init = r["phase"] == "init"
        when = "initialisation" if init else f"after {r['train_steps']} steps"
        style = dict(color=colors[r["cell"]], ls="-" if init else "--", marker=None)
        series.append((f"{r['cell']}, {when}", points, style))
    title = ("Gradient of the loss (from the last output) w.r.t. each step's state: MNIST, "
             "T={T} steps of {F} pixel(s), {units} units, mean over {batch} test examples, "
             "in {measure_dtype}").format(**records[0])  # fmt: skip
    harness.plot(path, ["grad_h_norm", "grad_c_norm"], series, title, "step t", xscale="linear")


if __name__ == "__main__":
    harness.main(__import__(__name__))
