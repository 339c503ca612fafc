"""`python -m experiments.steps`: training steps alone, all systems in one process.

    python -m experiments.steps --quick     # seconds
    python -m experiments.steps             # LSTM-128, batches 128 and 256, every system
    python -m experiments.steps --systems=cli,cli_xla --batch_sizes=256
    python -m experiments.steps --systems=cli --batch_sizes=256 --thread_processes=3

`experiments.bench` trains each system in a process of its own, minutes
apart; on a shared machine whose speed drifts, this compares the steps in one
process instead, on one batch of MNIST rows, in rounds whose order rotates so
that a slow minute reaches every system alike (`harness.interleaved_rounds`):

    for round in range(rounds):
        for system in rotate(systems, round):
            round_ms[system].append(mean ms of `steps` steps)
    ratio[system] = median over rounds of round_ms[system] / round_ms[keras_while]

and likewise the ratio to `cli`. Systems, every one LSTM -> softmax Dense:
- tfrnn_dynamic, tfrnn_static, keras_while, keras_unroll (and keras_cudnn
  when TensorFlow sees a GPU): `harness.train_step` (sparse cross-entropy, one
  Adam 1e-3 step) around the system's `harness.build_model`;
- cli, cli_unroll_2, cli_unroll_4, cli_bf16, cli_xla: the CLI's own step,
  `tfrnn.training.loop.TrainingLoop(Config(...)).train_step` (gather the batch,
  forward, cross-entropy, clipped Adam with its cosine schedule) of `Config()`
  with the one change `CLI_SYSTEMS` names, and this process's threads.
  Building one turns op determinism on for the whole process, as the CLI
  does (`Config.deterministic`).

Thread pools are fixed per process before TensorFlow starts: `--threads` sets
this process's. With `--thread_processes=N`, each setting of
`--thread_settings` runs the whole measurement in processes of its own
(`harness.isolated`), alternated A, B, A, B, ... N times; its records then
hold `process_median_ms` (each process's median), `median_ms` (their median)
and `ratio_to_first_threads` (the median over pairs of processes of their
medians' ratio to the first setting's); `round_ms` holds every process's rounds.

Time to 98 % is `python -m experiments.bench`'s (`harness.train_tfrnn`); each
`python -m tfrnn.train` run writes its own in report.json.

Writes `steps[-quick].json` (a record per batch size and system, per thread
setting: threads, round_ms, median_ms, ratio_to_keras_while, ratio_to_cli,
parameters) and `.md`.
"""

import functools
import statistics
import sys
import tempfile

from experiments import harness

NAME = "steps"
# The CLI's step: `Config()` with these changes.
CLI_SYSTEMS = {
    "cli": {},
    "cli_unroll_2": dict(unroll=2),
    "cli_unroll_4": dict(unroll=4),
    "cli_bf16": dict(precision="mixed_bfloat16"),
    "cli_xla": dict(jit_compile=True),
}
SYSTEMS = harness.TFRNN_SYSTEMS + harness.KERAS_SYSTEMS + tuple(CLI_SYSTEMS)
BASELINES = ("keras_while", "cli")  # a ratio_to_<baseline> each
FULL = dict(
    units=128, batch_sizes=[128, 256], rounds=9, steps=10, warmup_steps=3, systems=[],
    threads=[0, 0], thread_settings=["0:0", "1:2"], thread_processes=0,
)  # fmt: skip
QUICK = dict(units=16, batch_sizes=[32], rounds=3, steps=2, warmup_steps=1,
             systems=["tfrnn_dynamic", "tfrnn_static", "keras_while", "keras_unroll", "cli",
                      "cli_bf16"])  # fmt: skip
HELP = dict(
    systems="Systems (default: all this machine runs)",
    threads="INTRA,INTER threads of this process (0: TensorFlow's choice)",
    thread_settings="INTRA:INTER thread settings compared by --thread_processes",
    thread_processes="Processes per thread setting (0: measure in this process)",
)
CHOICES = dict(systems=SYSTEMS)
POSITIVE = ("units", "rounds", "steps", "batch_sizes")


def check(s):
    if s["warmup_steps"] < 0 or s["thread_processes"] < 0:
        raise ValueError("--warmup_steps and --thread_processes must be >= 0")
    if len(s["threads"]) != 2 or min(s["threads"]) < 0:
        raise ValueError(f"--threads={s['threads']}: give INTRA,INTER >= 0, e.g. 1,2")
    for setting in s["thread_settings"] or ["none"]:
        intra, _, inter = setting.partition(":")
        if not (intra.isdigit() and inter.isdigit()):
            raise ValueError(f"--thread_settings: {setting!r} is not INTRA:INTER, e.g. 0:0,1:2")


def ratio(times, baseline):
    """The median of `times[i] / baseline[i]`; None without a baseline."""
    return baseline and statistics.median(a / b for a, b in zip(times, baseline))


def build_steps(s, names, batch, threads, workdir):
    """`{system: step()}` on the first `batch` MNIST rows, and the parameter
    counts; every step traced, then warmed up."""
    import keras
    import tensorflow as tf

    from tfrnn.tasks.classify import config as config_lib
    from tfrnn.tasks.classify import data
    from tfrnn.training import loop

    arrays = data.load_arrays("mnist")
    x = tf.constant(data.to_sequences(arrays.x_train[:batch], "rows"))
    y, indices = tf.constant(arrays.y_train[:batch]), tf.range(batch)
    steps, parameters = {}, {}
    for name in names:
        if name in CLI_SYSTEMS:  # its data: the same rows
            config = config_lib.Config(
                units=s["units"], batch_size=batch, train_examples=batch, test_examples=batch,
                model_dir=f"{workdir}/{name}-{batch}", intra_op_threads=threads["intra_op"],
                inter_op_threads=threads["inter_op"], **CLI_SYSTEMS[name],
            )  # fmt: skip
            trainer = loop.TrainingLoop(config, log=lambda line: None)
            model = trainer.model
            steps[name] = lambda train_step=trainer.train_step: train_step(indices)["loss"]
        else:
            keras.utils.set_random_seed(0)
            model = harness.build_model(name, "lstm", s["units"])
            steps[name] = functools.partial(harness.train_step(model), x, y)
        parameters[name] = model.count_params()
        float(steps[name]())  # traces (and compiles, with XLA)
    for name in names:  # once every system is built
        for _ in range(s["warmup_steps"]):
            float(steps[name]())
    return steps, parameters


def measure(s, log=print):
    """One record per batch size and system, timed in interleaved rounds in
    this process, whose thread pools are set first to `s["threads"]`."""
    from tfrnn.training import runtime

    threads = runtime.set_threads(*s["threads"])  # before TensorFlow's runtime starts
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # a tf.function per system is no retrace
    gpu = bool(tf.config.list_physical_devices("GPU"))
    if "keras_cudnn" in s["systems"] and not gpu:
        raise ValueError("keras_cudnn needs a GPU that TensorFlow sees; drop it")
    names = list(s["systems"]) or [name for name in SYSTEMS if name != "keras_cudnn" or gpu]
    records = []
    with tempfile.TemporaryDirectory() as workdir:  # the CLI systems' (empty) model_dir
        for batch in s["batch_sizes"]:
            steps, parameters = build_steps(s, names, batch, threads, workdir)
            round_ms = harness.interleaved_rounds(
                steps, s["rounds"], s["steps"], lambda line: log(f"batch {batch} {line}")
            )
            for name in names:
                config = dict(batch_size=batch, system=name, units=s["units"], threads=threads)
                values = dict(parameters=parameters[name],
                              round_ms=[round(ms, 3) for ms in round_ms[name]],
                              median_ms=statistics.median(round_ms[name]))  # fmt: skip
                for baseline in BASELINES:
                    values[f"ratio_to_{baseline}"] = ratio(round_ms[name], round_ms.get(baseline))
                records.append(harness.Record(NAME, config, values=values).flat())
    return records


def thread_process(config, partial):
    """In a fresh process (`harness.isolated`): `measure(config)`."""
    return {"records": measure(config)}


def measure_threads(s, log=print):
    """Each of `s["thread_settings"]` measured in processes of its own,
    alternated; a record per setting, batch size and system."""
    runs = {setting: [] for setting in s["thread_settings"]}
    for index in range(s["thread_processes"]):
        for setting, processes in runs.items():
            config = {**s, "threads": [int(n) for n in setting.split(":")]}
            log(f"process {index + 1}/{s['thread_processes']}, threads {setting}")
            result = harness.isolated("experiments.steps:thread_process", config, None, log)
            if result["status"] != "ok":
                raise RuntimeError(f"threads {setting}: {result['note']}")
            processes.append(result["records"])
    first = runs[s["thread_settings"][0]]
    records = []
    for setting, processes in runs.items():
        for i, record in enumerate(processes[0]):
            medians = [process[i]["median_ms"] for process in processes]
            record.update(
                process_median_ms=medians, median_ms=statistics.median(medians),
                round_ms=[ms for process in processes for ms in process[i]["round_ms"]],
                ratio_to_first_threads=ratio(medians, [p[i]["median_ms"] for p in first]),
            )  # fmt: skip
            for key in (f"ratio_to_{baseline}" for baseline in BASELINES):
                values = [process[i][key] for process in processes]
                record[key] = None if None in values else statistics.median(values)
            records.append(record)
    return records


def markdown(records, s):
    by_threads = s["thread_processes"] > 0
    columns = [("threads", lambda r: "{intra_op}:{inter_op}".format(**r["threads"])),
               ("batch", lambda r: r["batch_size"]), "system", "median_ms",
               ("min–max of rounds", lambda r: f"{min(r['round_ms']):.1f}–{max(r['round_ms']):.1f}"),
               "ratio_to_keras_while", ("× cli", lambda r: r["ratio_to_cli"]),
               "parameters"] + [("× first threads", lambda r: r["ratio_to_first_threads"])] * by_threads  # fmt: skip
    where = (f"Each thread setting in {s['thread_processes']} processes, alternated; in each, "
             if by_threads else "In one process, ")  # fmt: skip
    return harness.header(
        f"Training step of LSTM-{s['units']}, all systems in one process", records,
        "MNIST rows (T=28); tfrnn_* and keras_*: Adam 1e-3; cli*: the CLI's step of Config() "
        f"with one change. {where}{s['rounds']} interleaved rounds of {s['steps']} steps each "
        "(order rotated per round). Ratio: median over rounds of the system's round mean over "
        "the baseline's in the same round"
        + ("; over processes, the median of theirs." if by_threads else "."),
    ) + harness.table(records, columns) + "\n"  # fmt: skip


def run(s, output, quick, log=print):
    try:
        records = measure_threads(s, log) if s["thread_processes"] else measure(s, log)
    except (ValueError, RuntimeError) as error:  # keras_cudnn without a GPU; a failed process
        sys.exit(f"error: {error}")
    return harness.write_results(output, NAME, quick, records, markdown(records, s), log)


if __name__ == "__main__":
    harness.main(__import__(__name__))
