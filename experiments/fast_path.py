"""`python -m experiments.fast_path`: which settings make the CLI's training faster.

    python -m experiments.fast_path --quick   # about a minute
    python -m experiments.fast_path           # LSTM-128, batch 256 (~10 minutes)

The step timed is the CLI's own (`tfrnn.loop.TrainingLoop.train_step`:
gather a batch of MNIST rows, forward, cross-entropy, clipped Adam with its
cosine schedule, op determinism on), built from `tfrnn.config.Config()` with
one change per candidate, in three parts:

1. `steps`, in one process (threads `in_process_threads`), interleaved
   rounds whose order rotates (as `experiments.steps`: a slow minute of the
   shared machine reaches every candidate alike): `unroll` k,
   `precision="mixed_bfloat16"`, the same with the weights cast to bfloat16
   once per step before the loop (a prototype, below), and `jit_compile`;
2. `threads`: thread pools are set per process before TensorFlow starts, so
   each setting runs in processes of its own (`harness.isolated`),
   alternated A, B, A, B; the ratio is the median over pairs of the
   processes' median steps;
3. `to_target`: `python -m tfrnn.train` itself to 98 %, with each
   candidate's flags, runs alternated.

```
for round in range(rounds):                       # part 1, one process
    for candidate in rotate(candidates, round):
        round_ms[candidate].append(mean ms of `steps` steps)
ratio[candidate] = median over rounds of round_ms[candidate] / round_ms[default]
```

`bf16_cast_once` is no Config option; it was measured to decide whether to
make it one. Under `mixed_bfloat16` Keras casts each weight to bfloat16 where
it is read: inside the while loop, at every step (3 reads and 9 casts per
iteration of the LSTM's forward loop). Here the recurrent layer's call runs
in a `keras.StatelessScope` mapping each cell weight to a bfloat16 cast made
once before the loop (the loop then holds none; the weights' gradients then
add up across steps in bfloat16, where the in-loop casts add them in float32).

Writes `fast_path[-quick].json` (a record per candidate and part, per CLI run
in part 3) and `.md`.
"""

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from experiments import harness

NAME = "fast_path"
BASELINE = "default"
# Part 1: candidate -> the Config fields it changes.
CANDIDATES = {
    "default": {},
    "unroll_2": dict(unroll=2),
    "unroll_4": dict(unroll=4),
    "unroll_7": dict(unroll=7),
    "bf16": dict(precision="mixed_bfloat16"),
    "bf16_cast_once": dict(precision="mixed_bfloat16"),  # + the prototype
    "xla": dict(jit_compile=True),
}
# Part 2: setting -> (intra-op, inter-op) threads; 0: TensorFlow's choice.
THREADS = {"tf_default": [0, 0], "intra1_inter2": [1, 2]}
# Part 3: `python -m tfrnn.train` with these flags.
TO_TARGET = {
    "tf_default_threads": ["--intra_op_threads=0", "--inter_op_threads=0"],
    "intra1_inter2": ["--intra_op_threads=1", "--inter_op_threads=2"],
    "intra1_inter2_xla": ["--intra_op_threads=1", "--inter_op_threads=2", "--jit_compile"],
    "intra1_inter2_unroll4": ["--intra_op_threads=1", "--inter_op_threads=2", "--unroll=4"],
}  # fmt: skip
FULL = dict(
    units=128, batch_size=256, rounds=9, steps=10, warmup_steps=3,
    candidates=list(CANDIDATES), in_process_threads=[1, 2],
    thread_processes=3, thread_rounds=5,
    target_runs=2, target_candidates=list(TO_TARGET),
)  # fmt: skip
QUICK = dict(units=16, batch_size=32, rounds=2, steps=2, warmup_steps=1)
QUICK.update(candidates=["default", "unroll_2", "bf16", "bf16_cast_once"], thread_processes=1)
QUICK.update(thread_rounds=2, target_runs=0)
HELP = dict(
    candidates=f"Part 1 candidates, of: {', '.join(CANDIDATES)}",
    in_process_threads="INTRA,INTER threads of part 1's process (0: TensorFlow's)",
    thread_processes="Part 2: processes per thread setting (0: skip)",
    thread_rounds="Part 2: rounds in each process",
    target_runs="Part 3: CLI runs to 98 % per candidate (0: skip)",
    target_candidates=f"Part 3 candidates, of: {', '.join(TO_TARGET)}",
)


def check(s):
    for key, known in (("candidates", CANDIDATES), ("target_candidates", TO_TARGET)):
        unknown = set(s[key]) - set(known)
        if unknown:
            raise ValueError(f"--{key}: {', '.join(sorted(unknown))} not among {', '.join(known)}")
    for name in ("units", "batch_size", "steps", "thread_rounds"):
        if s[name] <= 0:
            raise ValueError(f"--{name}={s[name]} must be > 0")
    for name in ("rounds", "warmup_steps", "thread_processes", "target_runs"):
        if s[name] < 0:
            raise ValueError(f"--{name}={s[name]} must be >= 0 (0: skip)")
    if len(s["in_process_threads"]) != 2 or min(s["in_process_threads"]) < 0:
        raise ValueError("--in_process_threads: give INTRA,INTER >= 0, e.g. 1,2")
    if BASELINE not in s["candidates"]:
        s["candidates"] = [BASELINE] + list(s["candidates"])


def rotate(names, by):
    by %= len(names)
    return list(names[by:]) + list(names[:by])


# --- the CLI's training step ------------------------------------------------------


def training_step(candidate, s, workdir, threads):
    """`(step, indices)`: the CLI's train step for `candidate`, one batch."""
    import tensorflow as tf

    from tfrnn import config as config_lib
    from tfrnn import loop

    config = config_lib.Config(
        units=s["units"],
        batch_size=s["batch_size"],
        model_dir=os.path.join(workdir, candidate),  # nothing is written there
        intra_op_threads=threads[0],
        inter_op_threads=threads[1],
        **CANDIDATES[candidate],
    )
    trainer = loop.TrainingLoop(config, log=lambda line: None)
    if candidate == "bf16_cast_once":
        cast_weights_once(trainer.model.get_layer("rnn"))
    return trainer.train_step, tf.range(s["batch_size"], dtype=tf.int32)


def cast_weights_once(layer):
    """Makes `layer`'s call read its cell's weights as bfloat16 casts made
    once per call, before the loop (the `bf16_cast_once` prototype)."""
    import keras
    import tensorflow as tf

    call = layer.call

    def call_with_cast_weights(*args, **kwargs):
        weights = layer.cell.weights
        scope = keras.StatelessScope(state_mapping=[(w, w.value) for w in weights])
        for weight in weights:  # the scope itself would keep them float32
            cast = tf.cast(weight.value, layer.cell.compute_dtype)
            scope.state_mapping[id(weight)] = cast
        with scope:
            return call(*args, **kwargs)

    layer.call = call_with_cast_weights


def casts_in_loops(step, indices):
    """Cast ops in the bodies of the traced step's while loops (forward and
    backward): where Keras's autocast reads the weights at every step."""
    library = step.get_concrete_function(indices).graph.as_graph_def().library
    return sum(
        node.op == "Cast"
        for function in library.function
        if "while_body" in function.signature.name
        for node in function.node_def
    )


def time_rounds(steps, s, log, rounds):
    """`{name: [mean ms per step of each round]}`, the order rotated per round."""
    for step, indices in steps.values():
        for _ in range(s["warmup_steps"]):
            float(step(indices)[0])
    round_ms = {name: [] for name in steps}
    for round_index in range(rounds):
        for name in rotate(list(steps), round_index):
            step, indices = steps[name]
            started = time.perf_counter()
            for _ in range(s["steps"]):
                loss = step(indices)[0]
            float(loss)  # the last step has finished
            round_ms[name].append(1000.0 * (time.perf_counter() - started) / s["steps"])
        log(f"round {round_index + 1}/{rounds}: "
            + ", ".join(f"{n} {ms[-1]:.1f} ms" for n, ms in round_ms.items()))  # fmt: skip
    return round_ms


def measure_steps(s, log=print):
    """Part 1: a record per candidate, all in this process."""
    import tensorflow as tf

    from tfrnn import loop

    tf.get_logger().setLevel("ERROR")  # a tf.function per candidate is no retrace
    steps, first_step, casts = {}, {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in s["candidates"]:
            step, indices = training_step(name, s, workdir, s["in_process_threads"])
            started = time.perf_counter()
            float(step(indices)[0])  # traces (and compiles, with XLA)
            first_step[name] = time.perf_counter() - started
            steps[name] = (step, indices)
            casts[name] = casts_in_loops(step, indices)
        threads = loop.set_threads(0, 0)  # reads what this process has
        round_ms = time_rounds(steps, s, log, s["rounds"])
    records = []
    for name in s["candidates"]:
        ratio = statistics.median(m / b for m, b in zip(round_ms[name], round_ms[BASELINE]))
        config = dict(part="steps", candidate=name, changes=CANDIDATES[name], threads=threads)
        values = dict(first_step_total_seconds=first_step[name], round_ms=round_ms[name],
                      median_ms=statistics.median(round_ms[name]), ratio_to_default=ratio,
                      casts_in_loops=casts[name])  # fmt: skip
        records.append(harness.Record(NAME, config, values=values).flat())
    return records


# --- part 2: thread pools, a process per setting ------------------------------------


def thread_process(config, partial):
    """In a fresh process (`harness.isolated`): the default step's rounds
    with `config["threads"]`; returns their ms and the threads the process had."""
    from tfrnn import loop

    s = config["settings"]
    with tempfile.TemporaryDirectory() as workdir:
        step = training_step(BASELINE, s, workdir, config["threads"])
        float(step[0](step[1])[0])
        rounds = time_rounds({BASELINE: step}, s, lambda line: None, s["thread_rounds"])
    return {"round_ms": rounds[BASELINE], "threads": loop.set_threads(0, 0)}


def measure_threads(s, log=print):
    """Part 2: processes alternated over `THREADS`; a record per setting."""
    medians = {name: [] for name in THREADS}
    for index in range(s["thread_processes"]):
        for name, threads in THREADS.items():
            config = dict(settings=s, threads=threads)
            result = harness.isolated("experiments.fast_path:thread_process", config, 900, log)
            if result["status"] != "ok":
                raise RuntimeError(f"threads {name}: {result['note']}")
            if any(threads):
                assert result["threads"] == {"intra_op": threads[0], "inter_op": threads[1]}
            medians[name].append(statistics.median(result["round_ms"]))
            log(f"process {index + 1}: threads {name} {medians[name][-1]:.1f} ms")
    records = []
    for name, (intra_op, inter_op) in THREADS.items():
        ratio = statistics.median(m / b for m, b in zip(medians[name], medians["tf_default"]))
        changes = dict(intra_op_threads=intra_op, inter_op_threads=inter_op)
        config = dict(part="threads", candidate=f"threads_{name}", changes=changes)
        values = dict(process_median_ms=medians[name], median_ms=statistics.median(medians[name]),
                      ratio_to_default=ratio)  # fmt: skip
        records.append(harness.Record(NAME, config, values=values).flat())
    return records


# --- part 3: the CLI to 98 % ------------------------------------------------------------

REPORTED = ("kernel", "unroll", "xla", "precision", "threads")
TO_TARGET_FIELDS = ("target_reached", "seconds_to_target", "train_seconds_to_target",
                    "epochs_to_target")  # fmt: skip


def cli_run(name, flags, model_dir):
    """One `python -m tfrnn.train` run; its record (from its report.json)."""
    command = [sys.executable, "-m", "tfrnn.train", *flags]
    done = subprocess.run([*command, f"--model_dir={model_dir}"], capture_output=True,
                          text=True, check=False, cwd=harness.ROOT)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{name}: {done.stderr.strip()[-500:]}")
    report = json.loads((pathlib.Path(model_dir) / "report.json").read_text())
    values = {key: report[key] for key in TO_TARGET_FIELDS}
    values.update(reported={key: report.get(key) for key in REPORTED},
                  median_step_ms=report["timing"]["median_step_ms"],
                  trace_seconds=report["timing"]["trace_seconds"])  # fmt: skip
    return values


def measure_to_target(s, log=print):
    """Part 3: `python -m tfrnn.train` per candidate, runs alternated."""
    records = []
    with tempfile.TemporaryDirectory() as workdir:
        for index in range(s["target_runs"]):
            for name in s["target_candidates"]:
                model_dir = os.path.join(workdir, f"{name}-{index}")
                values = cli_run(name, TO_TARGET[name], model_dir)
                config = dict(part="to_target", candidate=name, run=index + 1,
                              command="python -m tfrnn.train " + " ".join(TO_TARGET[name]))  # fmt: skip
                records.append(harness.Record(NAME, config, values=values).flat())
                log(f"to target, run {index + 1}: {name} {values['train_seconds_to_target']} s "
                    f"of training, median step {values['median_step_ms']:.1f} ms")  # fmt: skip
    return records


def target_summary(records):
    """Per part-3 candidate: mean training seconds to 98 %, ratio to the first."""
    runs = {}
    for r in records:
        if r["part"] == "to_target":
            runs.setdefault(r["candidate"], []).append(r["train_seconds_to_target"] or float("nan"))
    means = {name: statistics.mean(seconds) for name, seconds in runs.items()}
    first = next(iter(means.values()), None)
    return [dict(candidate=n, train_seconds_to_target=m, ratio_to_first=m / first,
                 runs=runs[n]) for n, m in means.items()]  # fmt: skip


# --- results ------------------------------------------------------------------------


def markdown(records, s):
    changes = ("changes", lambda r: ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-")
    steps = [r for r in records if r["part"] in ("steps", "threads")]
    text = harness.header(
        f"The fast path: the CLI's training step and time to 98 % (LSTM-{s['units']}, batch "
        f"{s['batch_size']})", records,
        "`tfrnn.loop.TrainingLoop.train_step` of `tfrnn.config.Config()` with one change each. "
        f"Part 1 (steps): one process with threads intra/inter {s['in_process_threads']}, "
        f"{s['rounds']} interleaved rounds of {s['steps']} steps; ratio: median over rounds of "
        "the round mean over the default's. Part 2 (threads): "
        f"{s['thread_processes']} processes per setting, alternated; ratio: median over pairs "
        "of the processes' median steps. Part 3: `python -m tfrnn.train` to 98 %, runs "
        "alternated; seconds of training (evaluations excluded).",
    )  # fmt: skip
    text += harness.table(steps, ("part", "candidate", changes, "median_ms",
                                  ("× default", lambda r: f"{r['ratio_to_default']:.3f}"),
                                  "first_step_total_seconds", ("casts in loops", lambda r: r.get("casts_in_loops"))))  # fmt: skip
    targets = [r for r in records if r["part"] == "to_target"]
    if targets:
        text += "\n\n## Time to 98 %: `python -m tfrnn.train`\n\n" + harness.table(
            targets, ("candidate", "run", "train_seconds_to_target", "seconds_to_target",
                      "epochs_to_target", "median_step_ms", "trace_seconds", "command"))  # fmt: skip
        text += "\n\n" + harness.table(
            target_summary(records),
            (("candidate", lambda r: r["candidate"]), ("mean s of training to 98 %",
             lambda r: f"{r['train_seconds_to_target']:.2f}"),
             ("× first", lambda r: f"{r['ratio_to_first']:.3f}")))  # fmt: skip
    return text + "\n"


def run(s, output, quick, log=print):
    records = measure_steps(s, log) if s["rounds"] else []
    if s["thread_processes"]:
        records += measure_threads(s, log)
    if s["target_runs"]:
        records += measure_to_target(s, log)
    return harness.write_results(output, NAME, quick, records, markdown(records, s), log)


if __name__ == "__main__":
    harness.main(__import__(__name__))
