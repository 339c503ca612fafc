"""`python -m experiments.fast_path`: which settings make the CLI's training step faster.

    python -m experiments.fast_path --quick   # seconds
    python -m experiments.fast_path           # LSTM-128, batch 256 (~5 minutes)

The step timed is the CLI's own (`tfrnn.loop.TrainingLoop.train_step`:
gather a batch of MNIST rows, forward, cross-entropy, clipped Adam with its
cosine schedule, op determinism on), built from `tfrnn.config.Config()` with
one change per candidate:

* in one process, in interleaved rounds (as `experiments.steps`: every
  candidate timed in every round, the order rotated from round to round, so
  that a slow minute of the shared machine reaches each alike): `unroll` k,
  `precision="mixed_bfloat16"`, the same with the weights cast to bfloat16
  once per step before the loop (a prototype, below), and `jit_compile`;
* thread pools are per process (set before TensorFlow starts), so each
  setting runs in processes of its own, alternated A, B, A, B: the
  default's step is timed in each, and a setting's ratio is the median of
  its processes' medians over the default's (TensorFlow's threads).

```
for round in range(rounds):                       # one process
    for candidate in rotate(candidates, round):
        round_ms[candidate].append(mean ms of `steps` steps)
ratio[candidate] = median over rounds of round_ms[candidate] / round_ms[default]
```

`bf16_cast_once` (not a Config option; measured to decide whether to make it
one): under `mixed_bfloat16` Keras casts each weight to bfloat16 where it is
read, inside the while loop: at every step. Here the recurrent layer's call
runs in a `keras.StatelessScope` that maps each cell weight to its bfloat16
cast made once before the loop (the gradient then accumulates in bfloat16
across steps, which the in-loop cast does in float32).

Writes `OUTPUT/fast_path[-quick].json` (environment, settings, records) and
`OUTPUT/fast_path[-quick].md`.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

import experiments

NAME = "fast_path"
BASELINE = "default"
# Candidate -> the Config fields it changes (None: the prototype's own change).
CANDIDATES = {
    "default": {},
    "unroll_2": dict(unroll=2),
    "unroll_4": dict(unroll=4),
    "unroll_7": dict(unroll=7),
    "bf16": dict(precision="mixed_bfloat16"),
    "bf16_cast_once": dict(precision="mixed_bfloat16"),
    "xla": dict(jit_compile=True),
}
THREADS = {"tf_default": (0, 0), "intra1_inter2": (1, 2)}
# Time to 98 %: `python -m tfrnn.train` with these flags, runs alternated.
TO_TARGET = {
    "tf_default_threads": ["--intra_op_threads=0", "--inter_op_threads=0"],
    "intra1_inter2": ["--intra_op_threads=1", "--inter_op_threads=2"],
    "intra1_inter2_xla": [
        "--intra_op_threads=1",
        "--inter_op_threads=2",
        "--jit_compile",
    ],
    "intra1_inter2_unroll4": [
        "--intra_op_threads=1",
        "--inter_op_threads=2",
        "--unroll=4",
    ],
}
FULL = dict(
    units=128,
    batch_size=256,
    rounds=9,
    steps=10,
    warmup_steps=3,
    candidates=list(CANDIDATES),
    thread_processes=3,
    thread_rounds=5,
    in_process_threads="0,0",  # INTRA,INTER of the one-process comparison
    target_runs=2,
    target_candidates=list(TO_TARGET),
)
QUICK = dict(
    units=16,
    batch_size=32,
    rounds=2,
    steps=2,
    warmup_steps=1,
    candidates=["default", "unroll_2", "bf16"],
    thread_processes=1,
    thread_rounds=2,
    in_process_threads="0,0",
    target_runs=0,
    target_candidates=list(TO_TARGET)[:2],
)


def settings(quick, **overrides):
    chosen = dict(QUICK if quick else FULL)
    chosen.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(chosen["candidates"]) - set(CANDIDATES)
    if unknown:
        raise ValueError(
            f"--candidates: {', '.join(sorted(unknown))} not among "
            f"{', '.join(CANDIDATES)}"
        )
    unknown = set(chosen["target_candidates"]) - set(TO_TARGET)
    if unknown:
        raise ValueError(
            f"--target_candidates: {', '.join(sorted(unknown))} not among "
            f"{', '.join(TO_TARGET)}"
        )
    for name in ("units", "batch_size", "steps", "thread_rounds"):
        if int(chosen[name]) <= 0:
            raise ValueError(f"--{name}={chosen[name]} must be > 0")
    for name in ("rounds", "thread_processes", "warmup_steps", "target_runs"):
        if int(chosen[name]) < 0:
            raise ValueError(f"--{name}={chosen[name]} must be >= 0 (0: skip)")
    try:
        intra_op, inter_op = (int(n) for n in str(chosen["in_process_threads"]).split(","))
    except ValueError:
        raise ValueError(
            f"--in_process_threads={chosen['in_process_threads']}: give INTRA,INTER, "
            "e.g. 1,2 (0: TensorFlow's choice)"
        ) from None
    chosen["in_process_threads"] = f"{intra_op},{inter_op}"
    if BASELINE not in chosen["candidates"]:
        chosen["candidates"] = [BASELINE] + list(chosen["candidates"])
    return chosen


def rotate(names, by):
    by %= len(names)
    return list(names[by:]) + list(names[:by])


# --- one candidate's training step ---------------------------------------------


def training_step(candidate, s, workdir, **fields):
    """`(step, indices)`: the CLI's train step for `candidate` and one batch
    (with the threads of `in_process_threads` unless `fields` say others)."""
    import tensorflow as tf

    from tfrnn import config as config_lib
    from tfrnn import loop

    intra_op, inter_op = (int(n) for n in s["in_process_threads"].split(","))
    config = config_lib.Config(
        units=s["units"],
        batch_size=s["batch_size"],
        model_dir=os.path.join(workdir, candidate),  # nothing is written there
        **{
            "intra_op_threads": intra_op,
            "inter_op_threads": inter_op,
            **CANDIDATES[candidate],
            **fields,
        },
    )
    trainer = loop.TrainingLoop(config, log=lambda line: None)
    if candidate == "bf16_cast_once":
        cast_weights_once(trainer.model.get_layer("rnn"))
    indices = tf.range(s["batch_size"], dtype=tf.int32)
    return trainer.train_step, indices


def cast_weights_once(layer):
    """Makes `layer`'s call read its cell's weights as bfloat16 casts made
    once per call, before the loop (the prototype of `bf16_cast_once`)."""
    import keras
    import tensorflow as tf

    call = layer.call

    def call_with_cast_weights(*args, **kwargs):
        weights = layer.cell.weights
        scope = keras.StatelessScope(state_mapping=[(w, w.value) for w in weights])
        for weight in weights:  # the scope would cast them back to float32
            scope.state_mapping[id(weight)] = tf.cast(
                weight.value, layer.cell.compute_dtype
            )
        with scope:
            return call(*args, **kwargs)

    layer.call = call_with_cast_weights


def time_rounds(steps, s, log, label=""):
    """`{name: [mean ms per step of each round]}`, names rotated per round."""
    names = list(steps)
    for name in names:
        for _ in range(s["warmup_steps"]):
            float(steps[name][0](steps[name][1])[0])
    round_ms = {name: [] for name in names}
    for round_index in range(s["rounds"]):
        for name in rotate(names, round_index):
            step, indices = steps[name]
            started = time.perf_counter()
            for _ in range(s["steps"]):
                loss = step(indices)[0]
            float(loss)  # the last step has finished
            round_ms[name].append(1000.0 * (time.perf_counter() - started) / s["steps"])
        log(
            f"{label}round {round_index + 1}/{s['rounds']}: "
            + ", ".join(f"{n} {round_ms[n][-1]:.1f} ms" for n in names)
        )
    return round_ms


def measure_in_process(s, log=print):
    """One record per candidate: round_ms, median_ms, ratio_to_default, trace_s."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # a tf.function per candidate is no retrace
    from tfrnn import loop

    records = []
    threads = None
    with tempfile.TemporaryDirectory() as workdir:
        steps, trace_seconds = {}, {}
        for name in s["candidates"]:
            step, indices = training_step(name, s, workdir)
            started = time.perf_counter()
            float(step(indices)[0])  # traces (and compiles, with XLA)
            trace_seconds[name] = time.perf_counter() - started
            steps[name] = (step, indices)
        threads = loop.set_threads(0, 0)  # reads what the process has
        round_ms = time_rounds(steps, s, log)
    for name in s["candidates"]:
        records.append(
            {
                "candidate": name,
                "changes": CANDIDATES[name],
                "where": "one process, interleaved rounds",
                "threads": threads,
                "first_step_seconds": trace_seconds[name],
                "round_ms": [round(ms, 3) for ms in round_ms[name]],
                "median_ms": statistics.median(round_ms[name]),
                "ratio_to_default": statistics.median(
                    m / b for m, b in zip(round_ms[name], round_ms[BASELINE])
                ),
            }
        )
    return records


# --- thread pools: a process per setting ---------------------------------------------


def thread_worker(s, intra_op, inter_op):
    """In a fresh process: the default candidate's step with these threads;
    prints one JSON line `{"round_ms": [...], "threads": {...}}`."""
    s = dict(s, rounds=s["thread_rounds"], in_process_threads="0,0")
    with tempfile.TemporaryDirectory() as workdir:
        step = training_step(
            BASELINE, s, workdir, intra_op_threads=intra_op, inter_op_threads=inter_op
        )
        float(step[0](step[1])[0])
        round_ms = time_rounds({BASELINE: step}, s, log=lambda line: None)[BASELINE]
    from tfrnn import loop

    threads = loop.set_threads(0, 0)  # reads what the process has
    print(json.dumps({"round_ms": round_ms, "threads": threads}))


def measure_threads(s, log=print):
    """Processes alternated A, B, A, B over `THREADS`; one record per setting
    (the ratio: median over process pairs of the medians' ratio)."""
    medians = {name: [] for name in THREADS}
    for index in range(s["thread_processes"]):
        for name, (intra_op, inter_op) in THREADS.items():
            command = [
                sys.executable,
                "-m",
                "experiments.fast_path",
                f"--thread_worker={intra_op},{inter_op}",
                f"--units={s['units']}",
                f"--batch_size={s['batch_size']}",
                f"--steps={s['steps']}",
                f"--warmup_steps={s['warmup_steps']}",
                f"--thread_rounds={s['thread_rounds']}",
            ]
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
            )
            if done.returncode != 0:
                raise RuntimeError(f"{name}: {done.stderr.strip()[-500:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if name != "tf_default":
                assert result["threads"] == {"intra_op": intra_op, "inter_op": inter_op}
            medians[name].append(statistics.median(result["round_ms"]))
            log(f"process {index + 1}: {name} {medians[name][-1]:.1f} ms")
    return [
        {
            "candidate": f"threads_{name}",
            "changes": dict(intra_op_threads=intra, inter_op_threads=inter),
            "where": "a process per setting, alternated",
            "process_median_ms": medians[name],
            "median_ms": statistics.median(medians[name]),
            "ratio_to_default": statistics.median(
                m / b for m, b in zip(medians[name], medians["tf_default"])
            ),
        }
        for name, (intra, inter) in THREADS.items()
    ]


# --- time to the target: the CLI itself ---------------------------------------------


def measure_to_target(s, log=print):
    """`python -m tfrnn.train` (its defaults but the candidate's flags) to 98 %,
    `target_runs` times per candidate, alternated; one record per run."""
    records = []
    with tempfile.TemporaryDirectory() as workdir:
        for index in range(s["target_runs"]):
            for name in s["target_candidates"]:
                model_dir = os.path.join(workdir, f"{name}-{index}")
                command = [sys.executable, "-m", "tfrnn.train", *TO_TARGET[name]]
                done = subprocess.run(
                    [*command, f"--model_dir={model_dir}"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise RuntimeError(f"{name}: {done.stderr.strip()[-500:]}")
                with open(os.path.join(model_dir, "report.json")) as f:
                    report = json.load(f)
                record = {
                    "candidate": name,
                    "run": index + 1,
                    "command": " ".join(command[1:]),
                    "reported": {
                        k: report[k]
                        for k in ("kernel", "unroll", "xla", "precision", "threads")
                    },
                    **{
                        k: report[k]
                        for k in (
                            "target_reached",
                            "seconds_to_target",
                            "train_seconds_to_target",
                            "epochs_to_target",
                        )
                    },
                    "median_step_ms": report["timing"]["median_step_ms"],
                    "trace_seconds": report["timing"]["trace_seconds"],
                }
                records.append(record)
                log(
                    f"to target, run {index + 1}: {name} "
                    f"{record['train_seconds_to_target']} s of training "
                    f"({record['seconds_to_target']} s with evaluations), "
                    f"median step {record['median_step_ms']:.1f} ms"
                )
    return records


def target_summary(records):
    """Per candidate: mean training seconds to target and its ratio to the first's."""
    by_name = {}
    for r in records:
        by_name.setdefault(r["candidate"], []).append(r)
    means = {
        name: statistics.mean(
            r["train_seconds_to_target"] or float("nan") for r in runs
        )
        for name, runs in by_name.items()
    }
    first = next(iter(means.values()))
    return [
        {"candidate": name, "mean_train_seconds": mean, "ratio": mean / first}
        for name, mean in means.items()
    ]


# --- results -----------------------------------------------------------------------


def markdown(records, s):
    lines = [
        f"# The fast path: the CLI's training step (LSTM-{s['units']}, MNIST rows, "
        f"batch {s['batch_size']})",
        "",
        "`tfrnn.loop.TrainingLoop.train_step` of `tfrnn.config.Config()` with one "
        f"change each. In one process: {s['rounds']} interleaved rounds of "
        f"{s['steps']} steps (order rotated per round); ratio: median over rounds "
        "of the candidate's round mean over the default's. Threads: "
        f"{s['thread_processes']} processes per setting, alternated; ratio: median "
        "over pairs of the processes' medians.",
        "",
        "| candidate | changes | median step ms | × default | first step s |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        if "changes" not in r:
            continue
        changes = ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-"
        first = r.get("first_step_seconds")
        lines.append(
            f"| {r['candidate']} | {changes} | {r['median_ms']:.2f} | "
            f"{r['ratio_to_default']:.3f} | {'-' if first is None else f'{first:.2f}'} |"
        )
    targets = [r for r in records if "train_seconds_to_target" in r]
    if targets:
        lines += [
            "",
            "## Time to 98 % (`python -m tfrnn.train`, runs alternated)",
            "",
            "| candidate | run | s of training to 98 % | s with evaluations | epochs "
            "| median step ms | trace s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in targets:
            lines.append(
                f"| {r['candidate']} | {r['run']} | {_fmt(r['train_seconds_to_target'])} "
                f"| {_fmt(r['seconds_to_target'])} | {_fmt(r['epochs_to_target'])} | "
                f"{r['median_step_ms']:.1f} | {r['trace_seconds']:.2f} |"
            )
        lines += ["", "| candidate | mean s of training | × first |", "|---|---|---|"]
        for t in target_summary(targets):
            lines.append(
                f"| {t['candidate']} | {t['mean_train_seconds']:.2f} | {t['ratio']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def _fmt(value):
    return "-" if value is None else f"{value:.4g}"


def run(s, output, quick, log=print):
    from tfrnn import report

    records = measure_in_process(s, log) if s["rounds"] else []
    if s["thread_processes"]:
        records += measure_threads(s, log)
    if s["target_runs"]:
        records += measure_to_target(s, log)
    paths = experiments.result_paths(output, quick, json=NAME, md=NAME)
    paths["json"].parent.mkdir(parents=True, exist_ok=True)
    report.write_json(
        paths["json"],
        {"environment": report.environment(), "settings": s, "records": records},
    )
    paths["md"].write_text(markdown(records, s))
    return records, paths


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_bool("quick", False, "A tiny configuration (seconds).")
    flags.DEFINE_list("candidates", None, f"Of: {', '.join(CANDIDATES)}.")
    flags.DEFINE_integer("units", None, "LSTM units (default 128).")
    flags.DEFINE_integer("batch_size", None, "Batch size (default 256).")
    flags.DEFINE_integer("rounds", None, "Interleaved rounds (default 9).")
    flags.DEFINE_integer("steps", None, "Timed steps per round (default 10).")
    flags.DEFINE_integer("warmup_steps", None, "Untimed steps (default 3).")
    flags.DEFINE_integer("thread_processes", None, "Processes per thread setting.")
    flags.DEFINE_integer("thread_rounds", None, "Rounds in each such process.")
    flags.DEFINE_string("thread_worker", None, "Internal: INTRA,INTER.")
    flags.DEFINE_string(
        "in_process_threads", None, "INTRA,INTER threads of the one-process part."
    )
    flags.DEFINE_integer("target_runs", None, "CLI runs to 98 % per candidate.")
    flags.DEFINE_list("target_candidates", None, f"Of: {', '.join(TO_TARGET)}.")
    flags.DEFINE_string("output", "experiments/results", "Directory for the results.")


def main(argv):
    s = experiments.settings_from_flags(
        argv,
        settings,
        FLAGS.quick,
        candidates=FLAGS.candidates,
        units=FLAGS.units,
        batch_size=FLAGS.batch_size,
        rounds=FLAGS.rounds,
        steps=FLAGS.steps,
        warmup_steps=FLAGS.warmup_steps,
        thread_processes=FLAGS.thread_processes,
        thread_rounds=FLAGS.thread_rounds,
        in_process_threads=FLAGS.in_process_threads,
        target_runs=FLAGS.target_runs,
        target_candidates=FLAGS.target_candidates,
    )
    if FLAGS.thread_worker:
        thread_worker(s, *(int(n) for n in FLAGS.thread_worker.split(",")))
        return
    records, paths = run(
        s, FLAGS.output, FLAGS.quick, log=lambda line: print(line, flush=True)
    )
    print(markdown(records, s))
    print(f"wrote {paths['json']} and {paths['md']}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
