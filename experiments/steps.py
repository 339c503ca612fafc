"""`python -m experiments.steps`: the training step alone, all systems in one process.

    python -m experiments.steps --quick     # seconds
    python -m experiments.steps             # LSTM-128, batches 128 and 256

`experiments.bench` trains each system in a process of its own, minutes
apart; on a shared machine whose speed drifts, this compares the kernels in
one process instead: `harness.train_step` (sparse cross-entropy, one Adam 1e-3
step) around each system's `harness.build_model`, on one batch of MNIST rows,
in rounds whose order rotates so that a slow minute reaches every system alike:

    for round in range(rounds):
        for system in rotate(systems, round):
            round_ms[system].append(mean ms of `steps` steps)
    ratio[system] = median over rounds of round_ms[system] / round_ms[keras_while]

Systems: tfrnn_dynamic, tfrnn_static, keras_while, keras_unroll (and
keras_cudnn when TensorFlow sees a GPU), every one LSTM -> softmax Dense.
Writes `steps[-quick].json` (a record per batch size and system: round_ms,
median_ms, ratio_to_keras_while, parameters) and `.md`.
"""

import statistics
import time

from experiments import harness

NAME = "steps"
BASELINE = "keras_while"
SYSTEMS = harness.TFRNN_SYSTEMS + harness.KERAS_SYSTEMS
FULL = dict(units=128, batch_sizes=[128, 256], rounds=9, steps=10, warmup_steps=3, systems=[])
QUICK = dict(units=16, batch_sizes=[32], rounds=3, steps=2, warmup_steps=1)
HELP = dict(systems="Systems (default: all this machine runs)")


CHOICES = dict(systems=SYSTEMS)
POSITIVE = ("units", "rounds", "steps", "batch_sizes")


def check(s):
    if s["warmup_steps"] < 0 or not s["batch_sizes"]:
        raise ValueError("--warmup_steps must be >= 0, --batch_sizes one or more")


def rotate(names, by):
    by %= len(names)
    return list(names[by:]) + list(names[:by])


def measure_batch(s, names, x, y, log):
    """`{system: [ms per step of each round]}` and the parameter counts."""
    import keras

    steps, parameters = {}, {}
    for name in names:
        keras.utils.set_random_seed(0)
        model = harness.build_model(name, "lstm", s["units"])
        parameters[name] = model.count_params()
        steps[name] = harness.train_step(model)
        float(steps[name](x, y))  # traces
    for name in names:  # once every system is built
        harness.time_steps_of(steps[name], [(x, y)], s["warmup_steps"], 0)
    round_ms = {name: [] for name in names}
    for round_index in range(s["rounds"]):
        for name in rotate(names, round_index):
            started = time.perf_counter()
            for _ in range(s["steps"]):
                loss = steps[name](x, y)
            float(loss)  # the last step has finished
            round_ms[name].append(1000.0 * (time.perf_counter() - started) / s["steps"])
        log(f"batch {len(x)} round {round_index + 1}/{s['rounds']}: "
            + ", ".join(f"{n} {round_ms[n][-1]:.1f} ms" for n in names))  # fmt: skip
    return round_ms, parameters


def measure(s, log=print):
    """One record per batch size and system, timed in interleaved rounds."""
    import tensorflow as tf

    from tfrnn import data

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if "keras_cudnn" in s["systems"] and not gpu:
        raise ValueError("keras_cudnn needs a GPU that TensorFlow sees; drop it")
    names = list(s["systems"]) or [name for name in SYSTEMS if name != "keras_cudnn" or gpu]
    arrays = data.load_arrays("mnist")
    records = []
    for batch in s["batch_sizes"]:
        x = tf.constant(data.to_sequences(arrays.x_train[:batch], "rows"))
        round_ms, parameters = measure_batch(s, names, x, tf.constant(arrays.y_train[:batch]), log)
        baseline = round_ms.get(BASELINE)
        for name in names:
            ratio = baseline and statistics.median(a / b for a, b in zip(round_ms[name], baseline))
            config = dict(batch_size=batch, system=name, units=s["units"])
            values = dict(parameters=parameters[name], ratio_to_keras_while=ratio,
                          round_ms=[round(ms, 3) for ms in round_ms[name]],
                          median_ms=statistics.median(round_ms[name]))
            records.append(harness.Record(NAME, config, values=values).flat())
    return records


def markdown(records, s):
    columns = (("batch", lambda r: r["batch_size"]), "system", "median_ms",
               ("min–max of rounds", lambda r: f"{min(r['round_ms']):.1f}–{max(r['round_ms']):.1f}"),
               "ratio_to_keras_while", "parameters")  # fmt: skip
    return harness.header(
        f"Training step of LSTM-{s['units']}, all systems in one process", records,
        f"MNIST rows (T=28), Adam 1e-3: {s['rounds']} interleaved rounds of {s['steps']} steps "
        "each (order rotated per round). Ratio: median over rounds of the system's round "
        "mean over keras_while's in the same round.",
    ) + harness.table(records, columns) + "\n"  # fmt: skip


def run(s, output, quick, log=print):
    records = measure(s, log)
    return harness.write_results(output, NAME, quick, records, markdown(records, s), log)


if __name__ == "__main__":
    harness.main(__import__(__name__))
