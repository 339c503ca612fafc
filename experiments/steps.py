"""`python -m experiments.steps`: the training step alone, all systems in one process.

    python -m experiments.steps --quick     # seconds
    python -m experiments.steps             # LSTM-128, batches 128 and 256

`experiments.bench` trains each system in a process of its own, one after
the other; on a shared machine whose speed drifts from minute to minute, its
step times of two systems are read minutes apart. This measures the kernel
comparison in one process instead: the same training step around each
system's model (a batch of MNIST rows, sparse cross-entropy, one Adam 1e-3
step: the benchmark's shared recipe), in rounds. Each round times `steps`
steps of every system, in an order rotated from round to round, so that a
slow minute reaches every system alike:

```
for round in range(rounds):
    for system in rotate(systems, round):
        round_ms[system].append(mean ms of `steps` steps)
ratio[system] = median over rounds of round_ms[system] / round_ms[keras_while]
```

Systems: tfrnn_dynamic, tfrnn_static (`tfrnn.models.build_classifier`),
keras_while, keras_unroll (`keras.layers.LSTM(unroll=False / True,
use_cudnn=False)`), and keras_cudnn when TensorFlow sees a GPU. Every model
is LSTM -> softmax `Dense` with the same parameter count.

Writes `OUTPUT/steps[-quick].json` (environment, settings, one record per
batch size and system: round_ms, median_ms, ratio_to_keras_while, parameters)
and `OUTPUT/steps[-quick].md`.
"""

import statistics
import time

from absl import app
from absl import flags

import experiments

NAME = "steps"
BASELINE = "keras_while"
TFRNN_SYSTEMS = ("tfrnn_dynamic", "tfrnn_static")
KERAS_SYSTEMS = ("keras_while", "keras_unroll", "keras_cudnn")
FULL = dict(units=128, batch_sizes=[128, 256], rounds=9, steps=10, warmup_steps=3)
QUICK = dict(units=16, batch_sizes=[32], rounds=3, steps=2, warmup_steps=1)


def settings(quick, **overrides):
    """The measurement's settings; `systems=None`: all this machine runs."""
    chosen = dict(QUICK if quick else FULL, systems=None)
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(chosen["systems"] or ()) - set(TFRNN_SYSTEMS + KERAS_SYSTEMS)
    if unknown:
        raise ValueError(
            f"--systems: {', '.join(sorted(unknown))} not among "
            f"{', '.join(TFRNN_SYSTEMS + KERAS_SYSTEMS)}"
        )
    try:
        chosen["batch_sizes"] = [int(b) for b in chosen["batch_sizes"]]
    except ValueError:
        raise ValueError(
            f"--batch_sizes={','.join(map(str, chosen['batch_sizes']))}: "
            "give integers, e.g. 128,256"
        ) from None
    for name in ("units", "rounds", "steps"):
        if chosen[name] <= 0:
            raise ValueError(f"--{name}={chosen[name]} must be > 0")
    if chosen["warmup_steps"] < 0:
        raise ValueError(f"--warmup_steps={chosen['warmup_steps']} must be >= 0")
    if not chosen["batch_sizes"] or min(chosen["batch_sizes"]) <= 0:
        raise ValueError(
            f"--batch_sizes={chosen['batch_sizes']} must be positive integers"
        )
    return chosen


def systems():
    """The systems this machine runs: keras_cudnn only with a GPU."""
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    return TFRNN_SYSTEMS + tuple(s for s in KERAS_SYSTEMS if s != "keras_cudnn" or gpu)


def build_model(system, units):
    """LSTM-`units` over `[batch, 28, 28]` -> softmax over 10 classes."""
    from experiments import baselines
    from tfrnn import models

    if system in TFRNN_SYSTEMS:
        return models.build_classifier(system.split("_", 1)[1], "lstm", units)
    return baselines.keras_lstm_classifier(
        units,
        unroll=system == "keras_unroll",
        use_cudnn=system == "keras_cudnn",
    )


def train_step(model, learning_rate=1e-3):
    """`step(x, y) -> loss`: one Adam step of `model`, the same for every system."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(model.trainable_variables)

    @tf.function(autograph=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            probabilities = model(x, training=True)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(y, probabilities)
            )
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return step


def rotate(names, by):
    by %= len(names)
    return list(names[by:]) + list(names[:by])


def measure(s, log=print):
    """One record per batch size and system, timed in interleaved rounds."""
    import keras
    import tensorflow as tf

    from tfrnn import data as data_lib

    runnable = systems()
    names = list(s["systems"] or runnable)
    if set(names) - set(runnable):
        raise ValueError("keras_cudnn needs a GPU that TensorFlow sees; drop it")
    arrays = data_lib.load_arrays("mnist")
    records = []
    for batch_size in s["batch_sizes"]:
        x = tf.constant(data_lib.to_sequences(arrays.x_train[:batch_size], "rows"))
        y = tf.constant(arrays.y_train[:batch_size])
        steps, parameters = {}, {}
        for name in names:
            keras.utils.set_random_seed(0)
            model = build_model(name, s["units"])
            parameters[name] = model.count_params()
            steps[name] = train_step(model)
            float(steps[name](x, y))  # traces
        for name in names:  # once every system is built
            for _ in range(s["warmup_steps"]):
                float(steps[name](x, y))
        round_ms = {name: [] for name in names}
        for round_index in range(s["rounds"]):
            for name in rotate(names, round_index):
                started = time.perf_counter()
                for _ in range(s["steps"]):
                    loss = steps[name](x, y)
                float(loss)  # the last step has finished
                round_ms[name].append(
                    1000.0 * (time.perf_counter() - started) / s["steps"]
                )
            log(
                f"batch {batch_size} round {round_index + 1}/{s['rounds']}: "
                + ", ".join(f"{n} {round_ms[n][-1]:.1f} ms" for n in names)
            )
        for name in names:
            records.append(
                {
                    "batch_size": batch_size,
                    "system": name,
                    "parameters": parameters[name],
                    "round_ms": [round(ms, 3) for ms in round_ms[name]],
                    "median_ms": statistics.median(round_ms[name]),
                    "ratio_to_keras_while": _median_ratio(
                        round_ms[name], round_ms.get(BASELINE)
                    ),
                }
            )
    return records


def _median_ratio(values, baseline):
    if not baseline:
        return None
    return statistics.median(v / b for v, b in zip(values, baseline))


def markdown(records, s):
    lines = [
        f"Training step of LSTM-{s['units']} on MNIST rows (T=28), Adam 1e-3, all "
        f"systems in one process: {s['rounds']} interleaved rounds of {s['steps']} "
        "steps each (order rotated per round). Ratio: median over rounds of the "
        "system's round mean over keras_while's in the same round.",
        "",
        "| batch | system | median step ms | min–max of rounds | × keras_while | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        ratio = r["ratio_to_keras_while"]
        lines.append(
            f"| {r['batch_size']} | {r['system']} | {r['median_ms']:.2f} | "
            f"{min(r['round_ms']):.1f}–{max(r['round_ms']):.1f} | "
            f"{'-' if ratio is None else f'{ratio:.3f}'} | {r['parameters']} |"
        )
    return "\n".join(lines) + "\n"


def result_paths(output, quick):
    return experiments.result_paths(output, quick, json=NAME, md=NAME)


def run(s, output, quick, log=print):
    from tfrnn import report

    records = measure(s, log)
    paths = result_paths(output, quick)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    report.write_json(
        paths["json"],
        {"environment": report.environment(), "settings": s, "records": records},
    )
    paths["md"].write_text(markdown(records, s))
    return records


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_bool("quick", False, "A tiny configuration (seconds).")
    flags.DEFINE_list("systems", None, "Systems (default: all this machine runs).")
    flags.DEFINE_list("batch_sizes", None, "Batch sizes (default 128,256).")
    flags.DEFINE_integer("units", None, "LSTM units (default 128).")
    flags.DEFINE_integer("rounds", None, "Interleaved rounds (default 9).")
    flags.DEFINE_integer(
        "steps", None, "Timed steps per system and round (default 10)."
    )
    flags.DEFINE_integer(
        "warmup_steps", None, "Untimed steps after tracing (default 3)."
    )
    flags.DEFINE_string("output", "experiments/results", "Directory for the results.")


def main(argv):
    s = experiments.settings_from_flags(
        argv,
        settings,
        FLAGS.quick,
        units=FLAGS.units,
        rounds=FLAGS.rounds,
        steps=FLAGS.steps,
        warmup_steps=FLAGS.warmup_steps,
        batch_sizes=FLAGS.batch_sizes,
        systems=FLAGS.systems,
    )
    records = run(
        s, FLAGS.output, FLAGS.quick, log=lambda line: print(line, flush=True)
    )
    print(markdown(records, s))
    paths = result_paths(FLAGS.output, FLAGS.quick)
    print(f"wrote {paths['json']} and {paths['md']}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
