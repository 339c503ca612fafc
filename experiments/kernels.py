"""`python -m experiments.kernels`: the fused kernels against the generic loop, Keras and PyTorch.

    python -m experiments.kernels --quick        # seconds
    python -m experiments.kernels                # 7 shapes x LSTM, GRU x 2 thread settings
    python -m experiments.kernels --shapes=wide --cells=lstm --thread_settings=0:0

A training step (forward, backward, Adam) of one recurrent layer under a
small softmax head reading every step's output (as a language model or a
tagger does), for each system, on the same random batch:

- tfrnn_fused, tfrnn_generic: `tfrnn.RNN(keras.layers.LSTMCell / GRUCell,
  kernel="fused" / "generic", return_sequences=True)` into `Dense(10)`;
- tfrnn_pretransposed: the generic loop over an LSTM cell whose matmuls are
  differentiated with weights transposed once per sequence (`dz @ W^T`
  without `transpose_b` in the loop; LSTM only): the generic path's share
  of the fused kernel's lesson (issue 22, item 3);
- keras: `keras.layers.LSTM / GRU(use_cudnn=False)`, the same head;
- torch: `torch.nn.LSTM / GRU` and `nn.Linear`, `torch.optim.Adam` (when
  `import torch` works; in the same process, its threads set as TensorFlow's,
  denormals flushed to zero as TensorFlow does);
- matmuls_only: the fused kernel's matrix products alone, as TensorFlow ops
  (per step 4 (LSTM) or 3 (GRU) products of `h` with a gate's `[units,
  units]` block in one while loop, as many with the blocks transposed in
  another, each step chained to the next by one sum or multiply, then the
  input projection, `dW_h`, `dW_x` and `dx` as one matmul per block), with
  no gate math, no saved states, no head and no update: what a kernel of
  TensorFlow ops organised as tfrnn's pays at least.

The gradient fades through a few hundred steps into denormal floats, which
TensorFlow's threads flush to zero; PyTorch's do only when
`torch.set_flush_denormal(True)` comes before its thread pool starts (its
LSTM step at [32, 200, 64, 512] took 3.3-6 s without, 0.27 s with).

Every system of one shape and cell is built in one process and timed in
rounds whose order rotates (`harness.interleaved_rounds`); a ratio is the
median over rounds of a system's round time over the baseline's in the
same round. Each thread setting (`--thread_settings`, TensorFlow's pools
are fixed per process) runs in a process of its own. Records hold the
1-minute load average before and after each shape's rounds: the machine is
shared.

Writes `kernels[-quick].json` (a record per thread setting, shape, cell and
system: median_ms, round_ms, ratio_to_tfrnn_generic, ratio_to_keras,
ratio_to_torch, auto_kernel: the kernel `kernel="auto"` runs there) and `.md`.
"""

import statistics
import sys

from experiments import harness

NAME = "kernels"
# [batch, time, features, units]; the language model's is its default Config's, read at run time
SHAPES = {
    "wide": [32, 200, 64, 512],
    "medium": [64, 100, 128, 256],
    "mnist": [256, 28, 28, 128],
    "language_model": None,
    "batch256": [256, 50, 64, 512],  # many rows: where fusing gained least
    "units64": [128, 28, 28, 64],  # the edge of kernel="auto"'s rule (AUTO_MIN_UNITS)
    "units32": [32, 50, 16, 32],
    "tiny": [4, 6, 3, 8],
}
SYSTEMS = ("tfrnn_fused", "tfrnn_generic", "tfrnn_pretransposed", "keras", "torch", "matmuls_only")
BASELINES = ("tfrnn_generic", "keras", "torch")  # a ratio_to_<baseline> each
FULL = dict(
    shapes=["wide", "medium", "mnist", "language_model", "batch256", "units64", "units32"],
    cells=["lstm", "gru"], systems=[],
    rounds=7, steps=2, warmup_steps=1, thread_settings=["0:0", "1:2"],
)  # fmt: skip
QUICK = dict(shapes=["tiny"], rounds=2, steps=1, thread_settings=["0:0"])
HELP = dict(
    shapes="Shapes, by name: " + ", ".join(f"{k} {v or '[LM default]'}" for k, v in SHAPES.items()),
    systems="Systems (default: all this machine runs)",
    thread_settings="INTRA:INTER thread settings, each in a process of its own (0: TensorFlow's)",
)
CHOICES = dict(shapes=tuple(SHAPES), cells=("lstm", "gru"), systems=SYSTEMS)
POSITIVE = ("rounds", "steps")


def check(s):
    if s["warmup_steps"] < 0:
        raise ValueError("--warmup_steps must be >= 0")
    for setting in s["thread_settings"]:
        intra, _, inter = setting.partition(":")
        if not (intra.isdigit() and inter.isdigit()):
            raise ValueError(f"--thread_settings: {setting!r} is not INTRA:INTER, e.g. 0:0,1:2")


def shape_of(name):
    """`[batch, time, features, units]` of a shape's name."""
    if SHAPES[name] is not None:
        return SHAPES[name]
    from tfrnn.tasks.language_model.config import Config
    from tfrnn.tasks.language_model.models import EMBEDDING

    config = Config()
    return [config.batch_size, config.bptt, EMBEDDING, config.units]


def systems_of(s, cell):
    """`(systems to run, {system: why not})` for `cell` on this machine."""
    import importlib.util

    names = list(s["systems"]) or list(SYSTEMS)
    skipped = {}
    if "torch" in names and importlib.util.find_spec("torch") is None:
        skipped["torch"] = "PyTorch is not installed"
    if "tfrnn_pretransposed" in names and cell != "lstm":
        skipped["tfrnn_pretransposed"] = "measured for the LSTM only"
    return [n for n in names if n not in skipped], skipped


# --- the systems' steps (in the measuring process) ---------------------------------


def tf_step(system, cell, shape):
    """`step() -> loss` of a TensorFlow system: one Adam step on a fixed batch."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tfrnn

    batch, time_steps, features, units = shape
    keras.utils.set_random_seed(0)
    cells = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}
    if system == "keras":
        layers = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
        layer = layers[cell](units, use_cudnn=False, return_sequences=True)
    elif system == "tfrnn_pretransposed":
        layer = tfrnn.RNN(PretransposedLSTMCell(units), kernel="generic", return_sequences=True)
    else:
        layer = tfrnn.RNN(cells[cell](units), kernel=system.split("_")[1], return_sequences=True)
    inputs = keras.Input((time_steps, features), batch_size=batch)
    outputs = keras.layers.Dense(10, activation="softmax")(layer(inputs))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(batch, time_steps, features)), tf.float32)
    y = tf.constant(rng.integers(0, 10, size=(batch, time_steps)))
    step = harness.train_step(model)
    return lambda: step(x, y)


def torch_step(cell, shape):
    """`step() -> loss` of PyTorch's `nn.LSTM` / `nn.GRU` under the same head."""
    import torch

    batch, time_steps, features, units = shape
    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](features, units, batch_first=True)
    head = torch.nn.Linear(units, 10)
    parameters = list(rnn.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(parameters, 1e-3)
    x = torch.randn(batch, time_steps, features)
    y = torch.randint(0, 10, (batch, time_steps))

    def step():
        optimizer.zero_grad()
        outputs, _ = rnn(x)
        logits = head(outputs)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), y.reshape(-1))
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def matmuls_step(cell, shape):
    """`step() -> a scalar` of the fused kernel's matrix products alone (see
    the module docstring), for an LSTM (4 gate blocks) or GRU (3) of `shape`."""
    import numpy as np
    import tensorflow as tf

    batch, time_steps, features, units = shape
    gates = {"lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(0)
    weight = lambda *dims: tf.constant(rng.normal(size=dims) / np.sqrt(dims[0]), tf.float32)
    w_x = [weight(features, units) for _ in range(gates)]
    w_h = [weight(units, units) for _ in range(gates)]
    x = weight(time_steps, batch, features)
    flat = lambda s: tf.reshape(s, [-1, s.shape[-1]])
    products = lambda rows, blocks: tf.add_n([tf.matmul(rows, b) for b in blocks])
    loop = lambda body, start, carry: tf.while_loop(
        lambda t, *_: tf.logical_and(t >= 0, t < time_steps), body, (start, *carry)
    )[1:]  # fmt: skip
    array = lambda: tf.TensorArray(tf.float32, time_steps, element_shape=[batch, units])

    @tf.function
    def step():
        xw = tf.reshape(products(flat(x), w_x), [time_steps, batch, units])

        def forward(t, h, hs):  # gates products, chained by a sum
            return t + 1, xw[t] + products(h, w_h), hs.write(t, h)

        _, hs = loop(forward, 0, (tf.zeros([batch, units]), array()))
        w_h_t = [tf.transpose(w) for w in w_h]

        def backward(t, dh, dzs):  # one dz for every block, chained by a multiply
            dz = xw[t] * dh[:, :1]
            return t - 1, products(dz, w_h_t), dzs.write(t, dz)

        _, dzs = loop(backward, time_steps - 1, (tf.ones([batch, units]), array()))
        dzs, hs = flat(dzs.stack()), flat(hs.stack())
        d_w = [tf.matmul(a, dzs, transpose_a=True) for a in [hs] * gates + [flat(x)] * gates]
        d_x = products(dzs, [tf.transpose(w) for w in w_x])
        return sum(tf.reduce_sum(t) for t in (*d_w, d_x))

    return step


def _pretransposed_cell_class():
    """`keras.layers.LSTMCell` whose matmuls' input gradients use weights
    transposed once per sequence (tfrnn's unrolls call `draw_dropout_masks`
    before the loop and `forget_dropout_masks` after it)."""
    import keras
    import tensorflow as tf

    def matmul(a, w, w_t):
        @tf.custom_gradient
        def product(a, w):
            return tf.matmul(a, w), lambda dz: (tf.matmul(dz, w_t), tf.matmul(a, dz, transpose_a=True))

        return product(a, w)

    class PretransposedLSTMCell(keras.layers.LSTMCell):
        transposed = None

        def draw_dropout_masks(self, step_input, state):
            self.transposed = [tf.transpose(self.kernel), tf.transpose(self.recurrent_kernel)]

        def forget_dropout_masks(self):
            self.transposed = None

        def call(self, inputs, states, training=False):
            h, c = states
            kernel, recurrent = tf.convert_to_tensor(self.kernel), tf.convert_to_tensor(self.recurrent_kernel)
            z = matmul(inputs, kernel, self.transposed[0]) + matmul(h, recurrent, self.transposed[1])
            z = tf.split(z + self.bias, 4, axis=1)
            c, o = self._compute_carry_and_output_fused(z, c)
            h = o * self.activation(c)
            return h, [h, c]

    return PretransposedLSTMCell


def PretransposedLSTMCell(units):  # noqa: N802 - a class made on first use
    return _pretransposed_cell_class()(units)


# --- the measurement -------------------------------------------------------------------


def measure(config, partial=None):
    """In a fresh process (`harness.isolated`): every shape and cell of
    `config`, its systems timed in interleaved rounds under `config["threads"]`."""
    import os

    from tfrnn.training import runtime

    threads = runtime.set_threads(*config["threads"])
    if "torch" in config["systems"] or not config["systems"]:
        try:
            import torch

            torch.set_flush_denormal(True)  # first: its thread pool inherits it
            torch.set_num_threads(threads["intra_op"] or os.cpu_count())
            torch.set_num_interop_threads(threads["inter_op"] or os.cpu_count())
        except ImportError:
            pass
    import tensorflow as tf

    from tfrnn import fused

    tf.get_logger().setLevel("ERROR")
    records = []
    for shape_name in config["shapes"]:
        shape = shape_of(shape_name)
        for cell in config["cells"]:
            names, skipped = systems_of(config, cell)
            steps = {}
            for name in names:
                make = {"torch": torch_step, "matmuls_only": matmuls_step}.get(name)
                steps[name] = make(cell, shape) if make else tf_step(name, cell, shape)
                float(steps[name]())  # traces
            for _ in range(config["warmup_steps"]):
                for step in steps.values():
                    float(step())
            load_before = os.getloadavg()[0]
            round_ms = harness.interleaved_rounds(
                steps, config["rounds"], config["steps"],
                lambda line, label=f"{shape_name} {cell}": print(f"{label} {line}", flush=True),
            )  # fmt: skip
            load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
            probe = {"lstm": tf.keras.layers.LSTMCell, "gru": tf.keras.layers.GRUCell}[cell]
            auto = fused.choose("auto", probe(shape[3]))
            head = dict(shape=shape_name, batch=shape[0], T=shape[1], features=shape[2],
                        units=shape[3], cell=cell, threads=threads)  # fmt: skip
            for name in names:
                values = dict(round_ms=[round(ms, 3) for ms in round_ms[name]],
                              median_ms=statistics.median(round_ms[name]),
                              load_average_1min=load, auto_kernel=auto)  # fmt: skip
                for baseline in BASELINES:
                    values[f"ratio_to_{baseline}"] = ratio(round_ms[name], round_ms.get(baseline))
                records.append(harness.Record(NAME, {**head, "system": name}, values=values).flat())
            for name, why in skipped.items():
                records.append(harness.Record(NAME, {**head, "system": name}, "skipped", why).flat())
    return {"records": records}


def ratio(times, baseline):
    """The median over rounds of `times[i] / baseline[i]`; None without a baseline."""
    return baseline and statistics.median(a / b for a, b in zip(times, baseline))


def markdown(records, s):
    columns = [
        ("threads", lambda r: "{intra_op}:{inter_op}".format(**r["threads"])),
        ("shape [B, T, F, H]", lambda r: f"{r['shape']} [{r['batch']}, {r['T']}, {r['features']}, {r['units']}]"),
        "cell", "system", "median_ms",
        ("min–max of rounds", lambda r: r["round_ms"] and f"{min(r['round_ms']):.1f}–{max(r['round_ms']):.1f}"),
        ("× tfrnn_generic", lambda r: r.get("ratio_to_tfrnn_generic")),
        ("× keras", lambda r: r.get("ratio_to_keras")),
        ("× torch", lambda r: r.get("ratio_to_torch")),
        ("auto runs", lambda r: r.get("auto_kernel")),
        ("load 1 min", lambda r: r.get("load_average_1min") and "–".join(map(str, r["load_average_1min"]))),
        ("note", lambda r: r["note"]),
    ]  # fmt: skip
    rows = [{"round_ms": None, **r} for r in records]
    return harness.header(
        "Training step of one recurrent layer: fused kernel, generic loop, Keras, PyTorch", records,
        "One Adam step (forward, backward, update) of the layer under a softmax Dense(10) of "
        "every step's output, on a fixed random batch. Per thread setting one process; per "
        "shape and cell, "
        f"{s['rounds']} interleaved rounds of {s['steps']} steps (order rotated per round). "
        "Ratio: median over rounds of the system's round mean over the baseline's in the same round.",
    ) + harness.table(rows, columns) + "\n"  # fmt: skip


def run(s, output, quick, log=print):
    records = []
    for setting in s["thread_settings"]:
        config = {**s, "threads": [int(n) for n in setting.split(":")]}
        log(f"threads {setting}: a process of its own")
        result = harness.isolated("experiments.kernels:measure", config, None, log)
        if result["status"] != "ok":
            sys.exit(f"error: threads {setting}: {result['note']}")
        records += result["records"]
        harness.write_json(harness.result_paths(output, NAME, quick)["json"], records)
    return harness.write_results(output, NAME, quick, records, markdown(records, s), log)


if __name__ == "__main__":
    harness.main(__import__(__name__))
