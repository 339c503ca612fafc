"""TF1 programs, run twice: by TF1 itself and by tfrnn's compat layer.

Every program takes `nn`, the module its RNN names come from: TF1's
`tf.compat.v1.nn` in the subprocess `tests/tf1_compat_reference.py`
(tf-keras's cells, `TF_USE_LEGACY_KERAS=1`, graph mode), or
`tfrnn.compat.v1.nn` in the tests. Nothing else differs between the two
runs, which is the migration tfrnn promises: only the RNN names change.

Weights, inputs and loss weights are drawn from seeds given by names
(`draw(name, shape)`), so both runs start from the same values as long as
the variables have the same names and shapes (checked: the programs return
their variable names).
"""

import zlib

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

B, F, UNITS = 4, 3, 5

# Grappler off: the graphs run as built, and start faster (as tf1_reference.py).
SESSION_CONFIG = v1.ConfigProto()
SESSION_CONFIG.graph_options.rewrite_options.disable_meta_optimizer = True


def draw(name, shape, scale=0.5):
    """Normal values seeded by `name`: the same in every process."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return (rng.normal(size=shape) * scale).astype(np.float32)


def load_drawn_values(session, variables, scale=0.5):
    """Sets every variable to `draw(its name)`; returns {name: value}."""
    values = {v.op.name: draw(v.op.name, v.shape.as_list(), scale) for v in variables}
    session.run([v.assign(values[v.op.name]) for v in variables])
    return values


# RNN cases: each cell and function of `nn`, forward and gradients ----------


def units_cell_class(nn):
    """A user's TF1 base cell: state and output both `num_units` wide."""

    class UnitsCell(nn.rnn_cell.RNNCell):
        def __init__(self, num_units, **kwargs):
            super().__init__(**kwargs)
            self._num_units = num_units

        @property
        def state_size(self):
            return self._num_units

        @property
        def output_size(self):
            return self._num_units

    return UnitsCell


def user_cell_class(nn):
    """A user's own TF1 cell: `build` with `add_variable`, `call`."""

    class MinimalRNNCell(units_cell_class(nn)):
        def build(self, inputs_shape):
            self._kernel = self.add_variable(
                "kernel", [inputs_shape[-1] + self._num_units, self._num_units]
            )
            self.built = True

        def call(self, inputs, state):
            output = tf.tanh(tf.matmul(tf.concat([inputs, state], 1), self._kernel))
            return output, output

    return MinimalRNNCell


def old_style_cell_class(nn):
    """A user's TF1 cell of the older kind: its own `__call__`, variables by
    `tf.compat.v1.get_variable` in its own scope (graphs only)."""

    class OldStyleCell(units_cell_class(nn)):
        def __call__(self, inputs, state, scope=None):
            with v1.variable_scope(scope or "old_style_cell", reuse=v1.AUTO_REUSE):
                depth = inputs.shape[-1] + self._num_units
                w = v1.get_variable("w", [depth, self._num_units])
                b = v1.get_variable("b", [self._num_units])
                output = tf.tanh(tf.matmul(tf.concat([inputs, state], 1), w) + b)
            return output, output

    return OldStyleCell


def make_cell(nn, name):
    """The cell called `name`, from `nn.rnn_cell`."""
    cells = nn.rnn_cell
    if name == "basic_rnn":
        return cells.BasicRNNCell(UNITS)
    if name == "basic_lstm":
        return cells.BasicLSTMCell(UNITS, forget_bias=0.7)
    if name == "basic_lstm_concat":
        return cells.BasicLSTMCell(UNITS, state_is_tuple=False)
    if name == "lstm":
        return cells.LSTMCell(UNITS)
    if name == "lstm_full":
        return cells.LSTMCell(
            UNITS, use_peepholes=True, cell_clip=1.0, num_proj=4, proj_clip=0.5,
            forget_bias=0.5,
        )
    if name == "gru":
        return cells.GRUCell(UNITS)
    if name == "multi":
        return cells.MultiRNNCell(
            [cells.BasicLSTMCell(UNITS), cells.GRUCell(4),
             cells.LSTMCell(3, use_peepholes=True, num_proj=2)]
        )
    if name == "multi_concat":  # states concatenated, TF1's deprecated form
        return cells.MultiRNNCell(
            [cells.LSTMCell(UNITS, num_proj=4, state_is_tuple=False), cells.GRUCell(3)],
            state_is_tuple=False,
        )
    if name == "dropout":
        return cells.DropoutWrapper(
            cells.LSTMCell(UNITS), input_keep_prob=0.8, output_keep_prob=0.7,
            state_keep_prob=0.6, seed=3,
        )
    if name == "dropout_variational":
        return cells.DropoutWrapper(
            cells.GRUCell(UNITS), input_keep_prob=0.8, output_keep_prob=0.7,
            state_keep_prob=0.6, variational_recurrent=True, input_size=F,
            dtype=tf.float32, seed=5,
        )
    if name == "residual":
        return cells.ResidualWrapper(cells.GRUCell(F))
    if name == "user":
        return user_cell_class(nn)(UNITS)
    if name == "user_old_style":
        return old_style_cell_class(nn)(UNITS)
    raise ValueError(f"unknown cell {name!r}")


def make_cells(nn, spec):
    """(cell, backward cell or None) of a case."""
    return (
        make_cell(nn, spec["cell"]),
        make_cell(nn, spec["cell_bw"]) if "cell_bw" in spec else None,
    )


def run_function(nn, spec, inputs, lengths, cells=None):
    """Calls `spec["function"]` on `cells` (by default made here); returns
    {name: tensor} of its results."""
    function = spec["function"]
    cell, cell_bw = cells or make_cells(nn, spec)
    steps = tf.unstack(inputs, axis=1)
    if function == "dynamic_rnn":
        time_major = spec.get("time_major", False)
        x = tf.transpose(inputs, [1, 0, 2]) if time_major else inputs
        # One iteration at a time: a random op's draws then come in step order.
        outputs, state = nn.dynamic_rnn(
            cell, x, sequence_length=lengths, dtype=tf.float32, time_major=time_major,
            parallel_iterations=1 if "dropout" in spec["cell"] else None,
        )
        results = {"outputs": outputs, "state": state}
    elif function == "static_rnn":
        outputs, state = nn.static_rnn(cell, steps, dtype=tf.float32, sequence_length=lengths)
        results = {"outputs": tf.stack(outputs, 1), "state": state}
    elif function == "bidirectional_dynamic_rnn":
        outputs, states = nn.bidirectional_dynamic_rnn(
            cell, cell_bw, inputs, sequence_length=lengths,
            dtype=tf.float32,
        )
        results = {"outputs": outputs, "state": states}
    elif function == "static_bidirectional_rnn":
        outputs, state_fw, state_bw = nn.static_bidirectional_rnn(
            cell, cell_bw, steps, dtype=tf.float32,
            sequence_length=lengths,
        )
        results = {"outputs": tf.stack(outputs, 1), "state": (state_fw, state_bw)}
    else:
        raise ValueError(f"unknown function {function!r}")
    return _flatten(results)


def _flatten(results):
    """{"outputs/0": ..., "state/1": ...}: each result's tensors in nest order
    (an LSTMStateTuple gives c, then h)."""
    flat = {}
    for key, value in results.items():
        for i, tensor in enumerate(tf.nest.flatten(value)):
            flat[f"{key}/{i}"] = tensor
    return flat


def case_inputs(name, spec):
    """(x, lengths or None) of a case, drawn from its name."""
    x = draw(f"{name}/x", (B, spec["time_steps"], F), scale=1.0)
    lengths = spec.get("lengths")
    return x, None if lengths is None else np.array(lengths, np.int32)


def loss_of(name, results):
    """sum over results k of sum(k * R_k), R_k drawn by name: every tensor
    reaches the gradients with a weight of its own."""
    return tf.add_n([
        tf.reduce_sum(tensor * draw(f"{name}/R/{key}", tensor.shape.as_list(), 1.0))
        for key, tensor in sorted(results.items())
    ])


def rnn_case(nn, name, spec):
    """One case in a graph of its own: results, loss gradients, variable names."""
    with tf.Graph().as_default():
        v1.set_random_seed(7)  # dropout's masks: same graph and op seeds
        x_value, lengths = case_inputs(name, spec)
        x = tf.constant(x_value)
        results = run_function(nn, spec, x, lengths)
        loss = loss_of(name, results)
        variables = sorted(v1.trainable_variables(), key=lambda v: v.op.name)
        grads = v1.gradients(loss, [x] + variables)
        with v1.Session(config=SESSION_CONFIG) as session:
            session.run(v1.global_variables_initializer())
            load_drawn_values(session, variables)
            values, grad_values = session.run((results, grads))
    out = {f"forward/{key}": value for key, value in values.items()}
    out["grad/x"] = grad_values[0]
    for variable, value in zip(variables, grad_values[1:]):
        out[f"grad/{variable.op.name}"] = value
    return out


# The two tutorial programs -------------------------------------------------


def train_tutorial(nn, kind, arrays, steps, checkpoint_path=None,
                   target_accuracy=0.90, batch_size=32):
    """The classic TF1 MNIST tutorial, `kind` "static" or "dynamic".

    static: `BasicLSTMCell(256)`, `static_rnn` over `tf.split` rows, logits
    from `outputs[-1]`, `AdamOptimizer(0.01)`, a `Saver` checkpoint once test
    accuracy reaches `target_accuracy`. dynamic: `BasicLSTMCell(100)`,
    `dynamic_rnn`, softmax of `final_state[1] @ W + b`, `AdamOptimizer(1e-4)`.
    Batches are taken in order; initial weights are drawn by name.

    Returns {"losses", "accuracies", "predictions" (test softmax at the end),
    "saved" (the step whose checkpoint was written, or -1),
    "saved_predictions" (the test softmax of the checkpoint's weights)} and
    the sorted variable names, joined by commas, as "names".
    """
    with tf.Graph().as_default():
        x = v1.placeholder(tf.float32, [None, 28, 28])
        y = v1.placeholder(tf.float32, [None, 10])
        if kind == "static":
            rows = [tf.squeeze(row, [1]) for row in tf.split(x, 28, axis=1)]
            lstm_cell = nn.rnn_cell.BasicLSTMCell(256)
            outputs, status = nn.static_rnn(lstm_cell, rows, dtype=tf.float32)
            weights = tf.Variable(v1.random_normal([256, 10]), name="weights")
            biases = tf.Variable(v1.random_normal([10]), name="biases")
            logits = tf.matmul(outputs[-1], weights) + biases
            prediction = tf.nn.softmax(logits)
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
            train = v1.train.AdamOptimizer(0.01).minimize(loss)
        else:
            lstm_cell = nn.rnn_cell.BasicLSTMCell(100)
            outputs, final_state = nn.dynamic_rnn(lstm_cell, x, dtype=tf.float32)
            weights = tf.Variable(v1.truncated_normal([100, 10], stddev=0.1), name="weights")
            biases = tf.Variable(tf.constant(0.1, shape=[10]), name="biases")
            prediction = tf.nn.softmax(tf.matmul(final_state[1], weights) + biases)
            loss = tf.reduce_mean(-tf.reduce_sum(y * tf.math.log(prediction), axis=1))
            train = v1.train.AdamOptimizer(1e-4).minimize(loss)
        correct = tf.equal(tf.argmax(prediction, 1), tf.argmax(y, 1))
        accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
        saver = v1.train.Saver()
        names = ",".join(sorted(v.op.name for v in v1.global_variables()))
        x_train, y_train, x_test, y_test = arrays
        test_feed = {x: x_test, y: y_test}
        losses, accuracies, saved, saved_predictions = [], [], -1, np.zeros(0)
        with v1.Session(config=SESSION_CONFIG) as session:
            session.run(v1.global_variables_initializer())
            load_drawn_values(session, v1.trainable_variables(), scale=0.1)
            for step in range(steps):
                rows = slice(step * batch_size, (step + 1) * batch_size)
                loss_value, _ = session.run(
                    (loss, train), {x: x_train[rows], y: y_train[rows]}
                )
                losses.append(loss_value)
                accuracies.append(session.run(accuracy, test_feed))
                if checkpoint_path and saved < 0 and accuracies[-1] >= target_accuracy:
                    saver.save(session, checkpoint_path)
                    saved = step
                    saved_predictions = session.run(prediction, test_feed)
            predictions = session.run(prediction, test_feed)
    return {
        "losses": np.array(losses), "accuracies": np.array(accuracies),
        "predictions": predictions, "saved": np.array(saved), "names": np.array(names),
        "saved_predictions": saved_predictions,
    }


# A checkpoint with every kind of cell and scope ----------------------------


def checkpoint_model(nn, x):
    """Three RNNs in TF1's default and custom scopes; {name: prediction}."""
    cells = nn.rnn_cell
    stack = cells.MultiRNNCell([
        cells.LSTMCell(UNITS, use_peepholes=True, cell_clip=1.0, num_proj=4),
        cells.GRUCell(4),
    ])
    outputs, state = nn.dynamic_rnn(stack, x, sequence_length=[5, 0, 3, 1], dtype=tf.float32)
    (out_fw, out_bw), (state_fw, state_bw) = nn.bidirectional_dynamic_rnn(
        cells.BasicLSTMCell(UNITS), cells.BasicRNNCell(4), x,
        sequence_length=[5, 2, 0, 4], dtype=tf.float32,
    )
    static_outputs, static_state = nn.static_rnn(
        cells.BasicLSTMCell(3), tf.unstack(x, axis=1), dtype=tf.float32, scope="static"
    )
    return {
        "stack/outputs": outputs, "stack/c0": state[0].c, "stack/h0": state[0].h,
        "stack/h1": state[1], "bi/fw": out_fw, "bi/bw": out_bw,
        "bi/state_fw_h": state_fw.h, "bi/state_bw": state_bw,
        "static/outputs": tf.stack(static_outputs, 1), "static/c": static_state.c,
    }


def checkpoint_program(nn, path, save):
    """Saves (`save`) drawn weights to `path`, or restores them from it, with
    `tf.compat.v1.train.Saver`; returns the model's predictions and names."""
    with tf.Graph().as_default():
        x = tf.constant(draw("checkpoint/x", (B, 5, F), scale=1.0))
        predictions = checkpoint_model(nn, x)
        saver = v1.train.Saver()
        names = ",".join(sorted(v.op.name for v in v1.global_variables()))
        with v1.Session(config=SESSION_CONFIG) as session:
            if save:
                session.run(v1.global_variables_initializer())
                load_drawn_values(session, v1.trainable_variables())
                saver.save(session, path)
            else:
                saver.restore(session, path)
            values = session.run(predictions)
    return {**{f"prediction/{k}": v for k, v in values.items()}, "names": np.array(names)}


# The API's shape ---------------------------------------------------------------

FUNCTIONS = (
    "static_rnn", "dynamic_rnn", "bidirectional_dynamic_rnn", "static_bidirectional_rnn",
)
CELL_CLASSES = (
    "RNNCell", "BasicRNNCell", "BasicLSTMCell", "LSTMCell", "GRUCell", "MultiRNNCell",
    "DropoutWrapper", "ResidualWrapper",
)


def signatures(nn):
    """{name: signature string} of `nn`'s functions and cell constructors,
    plus `LSTMStateTuple`'s fields and each cell's snake-case scope name."""
    import inspect

    result = {name: str(inspect.signature(getattr(nn, name))) for name in FUNCTIONS}
    for name in CELL_CLASSES:
        init = getattr(nn.rnn_cell, name).__init__
        result[f"rnn_cell.{name}"] = str(inspect.signature(init))
    result["LSTMStateTuple"] = ",".join(nn.rnn_cell.LSTMStateTuple._fields)
    return {f"signature/{k}": np.array(v) for k, v in result.items()}
