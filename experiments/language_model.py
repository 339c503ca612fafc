"""`python -m experiments.language_model`: held-out bits per character against training time.

    python -m experiments.language_model --quick    # a 60 KB text, LSTM-32, about a minute
    python -m experiments.language_model            # the default text and recipe (about 25 min)

The same text (`tfrnn.tasks.language_model.data.load`: by default Python's standard library),
the same model (Embedding 64 -> 1-layer LSTM -> Dense over the characters) and the same recipe
(`tfrnn.tasks.language_model.config.Config()`'s defaults, read at run time: streams, chunk
length K, Adam rate, global-norm clipping, constant rate, thread pools, op determinism) for the
same training time, each system in a process of its own, one after another
(`harness.run_all`):

- tfrnn_dynamic, tfrnn_static, tfrnn_unroll_4: `tfrnn.training.loop.TrainingLoop` of the
  language-model task (the loop has no time limit: its log stops it, see `BudgetSpent`);
- keras_stateful: `keras.layers.LSTM(stateful=True)` under `fit` over the chunks in order;
- torch: `nn.Embedding` + `nn.LSTM` + `nn.Linear`, the state detached between chunks (in a
  process that loads no TensorFlow; skipped when PyTorch is not installed);
- the chunk-length sweep: tfrnn_dynamic at each K of `--bptts` for `--sweep_seconds`.

Every system is timed and evaluated by tfrnn's `Clock` on one schedule: held-out bits per
character every `--eval_every_characters` characters of each stream and at epoch ends, the
held-out streams read chunk by chunk with the state carried (as the task's `evaluate`). A run
stops at its first evaluation at or past its budget of training seconds (the clock's
`train_seconds`: wall time less evaluations; tracing, compiling, first steps and tfrnn's
epoch-end checkpoints are in it).
"""

import math
import os
import pathlib
import shutil
import tempfile
import time

import numpy as np

from experiments import baselines, harness
from tfrnn.tasks.language_model import data  # TF-free
from tfrnn.tasks.language_model.config import Config  # TF-free
from tfrnn.training.clock import Clock, Target  # TF-free

NAME = "language_model"
TFRNN = {"tfrnn_dynamic": ("dynamic", 1), "tfrnn_static": ("static", 1),
         "tfrnn_unroll_4": ("dynamic", 4)}  # system: (mode, unroll)  # fmt: skip
SYSTEMS = (*TFRNN, "keras_stateful", "torch")
RECIPE = ("cell", "layers", "units", "batch_size", "bptt", "optimizer", "learning_rate",
          "clip_norm", "schedule", "intra_op_threads", "inter_op_threads", "deterministic")  # fmt: skip
EMBEDDING = 64  # features per character: tfrnn.tasks.language_model.models.EMBEDDING (tested)
NEVER = 1e-9  # bpc: a target no run reaches, so that only the time budget stops it
LN2 = math.log(2.0)
TIE = 0.01  # bpc: closer than this, the sweep's verdict names both K (one seed each)
FULL = dict(
    systems=list(SYSTEMS), seconds=180.0, bptts=[10, 25, 50, 100, 200], sweep_seconds=60.0,
    eval_every_characters=6000, text="", text_characters=None, units=None, batch_size=None,
    bptt=None, seed=0,
)  # fmt: skip
QUICK = dict(seconds=2.0, bptts=[10, 50], sweep_seconds=1.5, eval_every_characters=500,
             text_characters=60_000, units=32, batch_size=8, bptt=25)  # fmt: skip
HELP = dict(
    systems="Systems: " + ", ".join(SYSTEMS),
    seconds="Training seconds of each system (its first evaluation at or past them ends it)",
    bptts="Chunk lengths K of the sweep (tfrnn_dynamic); empty: no sweep",
    sweep_seconds="Training seconds of each K of the sweep",
    eval_every_characters="Evaluate every N characters of each stream (N/K steps) and at epoch "
    "ends",
    text="A UTF-8 text file (empty: the task's default, Python's standard library)",
    text_characters="Keep the first N characters of the text (none: all)",
    units="LSTM units (none: the task's default)", batch_size="Streams (none: the task's default)",
    bptt="Chunk length K of the systems (none: the task's default)",
)  # fmt: skip
CHOICES = dict(systems=SYSTEMS)
POSITIVE = ("seconds", "bptts", "sweep_seconds", "eval_every_characters", "text_characters",
            "units", "batch_size", "bptt")  # fmt: skip


def recipe(s):
    """The language model's defaults (`Config()`, read now), with the flags given."""
    defaults = Config()
    chosen = {key: getattr(defaults, key) for key in RECIPE}
    return {**chosen, **{k: s[k] for k in ("units", "batch_size", "bptt") if s[k] is not None}}


def configs(s, text):
    """A config per system (at the recipe's K), then one per K of the sweep (tfrnn_dynamic);
    `text`: `{"text_file": path or None, "text_name": what it is}` (`write_text`)."""
    r = recipe(s)
    plan = [("systems", system, r["bptt"], s["seconds"]) for system in s["systems"]]
    plan += [("bptt sweep", "tfrnn_dynamic", k, s["sweep_seconds"]) for k in s["bptts"]]
    return [dict(part=part, system=system, bptt=k, seconds=seconds, **text, seed=s["seed"],
                 eval_every_steps=max(1, round(s["eval_every_characters"] / k)),
                 recipe={**r, "bptt": k})
            for part, system, k, seconds in plan]  # fmt: skip


# --- the measurement: one system, in a process of its own -------------------------------


def measure(c, partial):
    """Trains `c["system"]` for `c["seconds"]` of training; the clock's fields, its evaluations
    (saved at each, so that a run killed at the process budget keeps its curve)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    train = {"keras_stateful": train_keras, "torch": train_torch}.get(c["system"], train_tfrnn)
    values = train(c, partial)
    import sys  # after training: what this process loaded

    return {**values, "load_at_start": load, "tensorflow_loaded": "tensorflow" in sys.modules,
            "environment": harness.environment()}  # fmt: skip


class BudgetSpent(Exception):
    """Raised by a run's log at its first evaluation at or past the budget: it ends the run."""


def relay(c):
    """A log printing a run's lines under its name (`harness.run_all` relays them)."""
    return lambda line: print(f"{c['system']} K={c['bptt']}: {line}", flush=True)


def spent(c, clock, partial):
    """After an evaluation: saves the evaluations so far; whether the budget is spent."""
    partial({"evaluations": clock.evaluations})
    return clock.evaluations[-1]["train_seconds"] >= c["seconds"]


def clock_fields(clock, characters_per_step):
    """The clock's result, the fields every system records."""
    result = clock.result(characters_per_step)
    keys = ("steps", "first_step_seconds", "median_step_ms", "examples_per_second",
            "step_seconds", "eval_seconds", "wall_seconds", "train_seconds", "evaluations")
    return {key: result[key] for key in keys}  # fmt: skip


def language_config(c, **fields):
    """The task's Config of `c`'s recipe, never stopped by its target nor its epochs."""
    return Config(**c["recipe"], text=c["text_file"], seed=c["seed"], target_bpc=NEVER,
                  max_epochs=10**6, eval_every_steps=c["eval_every_steps"], **fields)  # fmt: skip


def budget_clock(c, steps_per_epoch):
    """The stock systems' `Clock`: the loop's target and `c`'s evaluation schedule."""
    target = Target("test_bpc", NEVER, higher_is_better=False)
    return Clock(target, c["eval_every_steps"], steps_per_epoch, relay(c))


def train_tfrnn(c, partial):
    """`tfrnn.training.loop.TrainingLoop` of the language model in a scratch run directory,
    no checkpoints but the loop's own at epoch ends, stopped from its log at the budget."""
    from tfrnn.training import loop, models, report

    mode, unroll = TFRNN[c["system"]]
    workdir = tempfile.mkdtemp(prefix="tfrnn-language-model-")
    config = language_config(c, mode=mode, unroll=unroll, model_dir=f"{workdir}/run",
                             checkpoint_every_steps=10**9, log_every_steps=10**9)  # fmt: skip

    def log(line):
        if line.startswith("evaluation at"):
            relay(c)(line)
            if spent(c, trainer.clock, partial):
                raise BudgetSpent

    try:
        trainer = loop.TrainingLoop(config, log=log)
        try:
            trainer.run()
        except BudgetSpent:
            pass
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    task, model = trainer.task, trainer.model
    return {**clock_fields(trainer.clock, task.examples_per_step), **text_fields(task.text),
            "trace_seconds": trainer.trace_seconds, "threads": trainer.threads,
            "kernel": report.kernel_name(config.cell, model), "parameters": models.count_parameters(model),
            "unroll": report.unroll_ran(model, task.time_steps)}  # fmt: skip


def chunks(ids, count, bptt):
    """`(inputs, targets)`, each `[chunks, count, bptt]`: `ids` read as `count` streams,
    chunk s holding characters `[s*K, (s+1)*K)` of each and the targets their successors."""
    streams = data.streams(ids, count)
    n = data.chunks_per_stream(streams.shape[1], bptt)
    cut = lambda start: streams[:, start : start + n * bptt].reshape(count, n, bptt)  # noqa: E731
    return cut(0).transpose(1, 0, 2), cut(1).transpose(1, 0, 2)


def text_fields(text):
    """The text a system read (a `data.Text`): its source, hash and sizes."""
    return {"text": {"source": text.source, "sha256": text.sha256},
            "vocabulary_size": len(text.vocabulary), "train_characters": len(text.train),
            "test_characters": len(text.test)}  # fmt: skip


def summed_nats(logits, targets):
    """The summed cross-entropy (nats) of float `logits [..., V]` against int `targets [...]`."""
    logits = np.asarray(logits, np.float64)
    top = logits.max(-1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(-1)) + top[..., 0]
    picked = np.take_along_axis(logits, targets[..., None].astype(np.int64), -1)[..., 0]
    return float((log_z - picked).sum())


def train_keras(c, partial):
    """A stateful Keras LSTM under `fit` over the chunks in order (batch = the streams, no
    shuffling, states reset at each epoch's start); the same optimizer as the loop's
    (`tfrnn.training.optimizers.make_optimizer`), the same thread pools and determinism."""
    import keras
    import tensorflow as tf

    from tfrnn.training import optimizers, runtime

    config = language_config(c)
    threads = runtime.set_threads(config.intra_op_threads, config.inter_op_threads)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    text, batch, k = data.load(config.text), config.batch_size, config.bptt
    (x, y), test = chunks(text.train, batch, k), chunks(text.test, batch, k)
    model = keras_model(config, len(text.vocabulary))
    model.compile(optimizer=optimizers.make_optimizer(config, len(x)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))  # fmt: skip
    lstm, clock = model.get_layer("lstm"), budget_clock(c, len(x))

    def evaluate():
        kept = [v.numpy() for v in lstm.states]  # the training streams' state, put back after
        lstm.reset_states()
        nats = sum(summed_nats(model.predict_on_batch(a), b) for a, b in zip(*test))
        for variable, value in zip(lstm.states, kept):
            variable.assign(value)
        return {"test_bpc": nats / test[1].size / LN2}

    class Tracker(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            lstm.reset_states()

        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):  # the loss is a float: the step is done
            if clock.stepped(time.perf_counter() - self.started):
                started = time.perf_counter()
                clock.evaluated(evaluate(), time.perf_counter() - started)
                self.model.stop_training = spent(c, clock, partial)

    clock.begin()
    in_order = tf.data.Dataset.from_tensor_slices((x, y)).repeat()  # a batch per chunk
    model.fit(in_order, steps_per_epoch=len(x), epochs=10**6, shuffle=False, verbose=0,
              callbacks=[Tracker()])  # fmt: skip
    ops, _ = baselines.traced_ops(model.train_function)
    return {**clock_fields(clock, batch * k), **text_fields(text), "threads": threads,
            "kernel": baselines.keras_kernel(lstm.unroll, ops), "parameters": model.count_params()}


def keras_model(config, vocabulary_size):
    """ids `[streams, K]` -> Embedding(64) -> LSTM(stateful, every output) -> Dense: logits."""
    import keras

    ids = keras.Input(batch_shape=(config.batch_size, config.bptt), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocabulary_size, EMBEDDING, name="embedding")(ids)
    x = keras.layers.LSTM(config.units, stateful=True, return_sequences=True, name="lstm")(x)
    logits = keras.layers.Dense(vocabulary_size, name="characters")(x)
    return keras.Model(ids, logits, name="keras_stateful_language_model")


def train_torch(c, partial):
    """`torch_model` trained chunk by chunk in order, the state detached between chunks and
    zeroed at each epoch's start; Adam (Keras's epsilon, 1e-7) at the recipe's rate,
    `clip_grad_norm_` to its norm; the intra-op threads of TensorFlow's pool."""
    import torch

    config = language_config(c)
    if (config.optimizer, config.schedule, config.layers) != ("adam", "constant", 1):
        raise ValueError("the torch system implements Adam at a constant rate, one layer")
    torch.set_num_threads(config.intra_op_threads or os.cpu_count())
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(bool(config.deterministic))
    text, batch, k = data.load(config.text), config.batch_size, config.bptt
    x, y = (torch.as_tensor(a, dtype=torch.long) for a in chunks(text.train, batch, k))
    test = [torch.as_tensor(a, dtype=torch.long) for a in chunks(text.test, batch, k)]
    model = torch_model(len(text.vocabulary), config.units)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, eps=1e-7)
    clock, done = budget_clock(c, len(x)), False
    clock.begin()
    while not done:
        state = None
        for step in range(len(x)):
            started = time.perf_counter()
            logits, state = model(x[step], state)
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[step].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            state = tuple(s.detach() for s in state)
            loss.item()
            if clock.stepped(time.perf_counter() - started):
                started = time.perf_counter()
                clock.evaluated(torch_bpc(model, *test), time.perf_counter() - started)
                done = spent(c, clock, partial)
                if done:
                    break
    return {**clock_fields(clock, batch * k), **text_fields(text), "kernel": "aten CPU",
            "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
            "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip


def torch_model(vocabulary_size, units):
    """ids -> `nn.Embedding(64)` -> `nn.LSTM` -> `nn.Linear`: `(logits, (h, c))` (PyTorch's
    LSTM has two bias vectors: 4 * units parameters more than Keras's, the same function)."""
    import torch

    class CharacterLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocabulary_size, EMBEDDING)
            self.lstm = torch.nn.LSTM(EMBEDDING, units, batch_first=True)
            self.dense = torch.nn.Linear(units, vocabulary_size)

        def forward(self, ids, state=None):
            outputs, state = self.lstm(self.embedding(ids), state)
            return self.dense(outputs), state

    return CharacterLSTM()


def torch_bpc(model, inputs, targets):
    """Held-out bits per character: `inputs`/`targets` `[chunks, streams, K]`, the state
    carried from chunk to chunk, starting from zeros."""
    import torch

    state, nats = None, 0.0
    with torch.no_grad():
        for x, y in zip(inputs, targets):
            logits, state = model(x, state)
            nats += float(torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), y.flatten(), reduction="sum"))  # fmt: skip
    return {"test_bpc": nats / targets.numel() / LN2}


# --- the run, its table, verdicts and plot ---------------------------------------------


def check(s):
    if s["text"] and not pathlib.Path(s["text"]).is_file():
        raise ValueError(f"--text={s['text']}: no such file")


def write_text(s, workdir):
    """`{"text_file", "text_name"}`: the text every system reads (`--text`, else the task's
    default), cut to `--text_characters` in a file of `workdir` when asked."""
    if not s["text_characters"]:
        return {"text_file": s["text"] or None, "text_name": s["text"] or "the task's default"}
    full, source = (data.read_text(s["text"]), s["text"]) if s["text"] else data.stdlib_text()
    path = pathlib.Path(workdir) / "text.txt"
    path.write_text(full[: s["text_characters"]], encoding="utf-8")
    return {"text_file": str(path), "text_name": f"the first {s['text_characters']:,} "
            f"characters of {source}"}  # fmt: skip


def run(s, output, quick, log=print):
    paths = harness.result_paths(output, NAME, quick, "json", "md", "png")
    name = lambda c: f"{c['system']} K={c['bptt']}, {c['seconds']:g} s"  # noqa: E731
    wall = 3 * max(s["seconds"], s["sweep_seconds"]) + 300  # a hung process is killed then
    with tempfile.TemporaryDirectory(prefix="tfrnn-language-model-") as workdir:
        plan = configs(s, write_text(s, workdir))
        log(f"{len(plan)} runs, one process each, one at a time")
        records = harness.run_all(NAME, f"experiments.{NAME}:measure", plan, wall, log,
                                  paths["json"], name=name,
                                  skip=lambda c: baselines.unavailable(c["system"]))  # fmt: skip
    records = [{**r, **at_budget(r)} for r in records]
    plot(paths["png"], records, quick)
    written = harness.write_results(output, NAME, quick, records, markdown(records, paths["png"]), log)
    return {**written, "png": paths["png"]}


def at_budget(record):
    """`best_test_bpc` (within the budget), `test_bpc_at_budget` (linear between the two
    evaluations around it), `last_train_seconds` and `epochs` of a record's evaluations."""
    evaluations, budget = record.get("evaluations") or [], record["seconds"]
    if not evaluations:
        return {}
    within = [e["test_bpc"] for e in evaluations if e["train_seconds"] <= budget]
    after = next((i for i, e in enumerate(evaluations) if e["train_seconds"] >= budget), None)
    bpc = None
    if after is not None:
        late = evaluations[after]
        early = evaluations[after - 1] if after else late
        span = late["train_seconds"] - early["train_seconds"]
        part = (budget - early["train_seconds"]) / span if span else 1.0
        bpc = early["test_bpc"] + part * (late["test_bpc"] - early["test_bpc"])
    last = evaluations[-1]
    return {"best_test_bpc": min(within + [bpc] * (bpc is not None), default=None),
            "test_bpc_at_budget": bpc, "last_train_seconds": last["train_seconds"],
            "epochs": last["epoch"]}  # fmt: skip


def measured(records, part):
    return [r for r in records if r["part"] == part and r.get("test_bpc_at_budget") is not None]


def systems_verdict(records):
    """Is tfrnn's bpc at least as good as Keras's and PyTorch's (same model, recipe, time)?"""
    ok = {r["system"]: r for r in measured(records, "systems")}
    mine = sorted((r for s, r in ok.items() if s in TFRNN), key=lambda r: r["test_bpc_at_budget"])
    others = [ok[s] for s in ("keras_stateful", "torch") if s in ok]
    question = "**Is tfrnn's bpc at least as good as Keras's and PyTorch's for the same model, recipe and time?**"
    if not mine or not others:
        return f"{question} not measured (a tfrnn system and a stock one are needed)."
    best = mine[0]["test_bpc_at_budget"]
    answer = "yes" if all(best <= o["test_bpc_at_budget"] for o in others) else "no"
    bpc = lambda r: f"{r['system']} {r['test_bpc_at_budget']:.3f}"  # noqa: E731
    gaps = ", ".join(f"{best - o['test_bpc_at_budget']:+.3f}" for o in others)
    text = (f"{question} {answer}: held-out bpc at {mine[0]['seconds']:g} s of training, tfrnn "
            f"{', '.join(map(bpc, mine))}; against {', '.join(map(bpc, others))} "
            f"(best tfrnn minus each: {gaps}).")  # fmt: skip
    outside = ", ".join(f"{r['system']} {r['train_seconds'] - r['step_seconds']:.1f}" for r in ok.values())
    return f"{text} {same_step(list(ok.values()))} Seconds outside the training steps: {outside}."


def same_step(records):
    """bpc at the last step every record evaluated (the same schedule for all): what each
    learned from the same characters, apart from how fast it ran."""
    common = set.intersection(*({e["step"] for e in r["evaluations"]} for r in records))
    if not common:
        return ""
    step = max(common)
    at = [(r["system"], next(e for e in r["evaluations"] if e["step"] == step)) for r in records]
    return (f"At the same step ({step}, the last all evaluated): "
            + ", ".join(f"{s} {e['test_bpc']:.3f} (after {e['train_seconds']:.0f} s)" for s, e in at)
            + ".")  # fmt: skip


def bptt_verdict(records):
    """Which K reaches the lowest held-out bpc in the sweep's time?"""
    sweep = sorted(measured(records, "bptt sweep"), key=lambda r: r["test_bpc_at_budget"])
    question = "**Which K is best in a fixed time?**"
    if len(sweep) < 2:
        return f"{question} not measured (fewer than two K)."
    first, rest = sweep[0], sweep[1:]
    close = [r["bptt"] for r in rest if r["test_bpc_at_budget"] - first["test_bpc_at_budget"] < TIE]
    others = ", ".join(f"K={r['bptt']} {r['test_bpc_at_budget']:.3f}" for r in rest)
    tie = f", within {TIE} bpc of K={', '.join(map(str, close))}" if close else ""
    return (f"{question} K={first['bptt']}{tie}: {first['test_bpc_at_budget']:.3f} bpc after "
            f"{first['seconds']:g} s of training (tfrnn_dynamic; {others}).")  # fmt: skip


COLUMNS = (
    "system", ("K", "bptt"), "status", ("steps", "steps"), ("epochs", "epochs"),
    ("train s", "last_train_seconds"),
    ("outside steps s", lambda r: r["train_seconds"] - r["step_seconds"] if r.get("step_seconds") else None),
    "best_test_bpc", "test_bpc_at_budget", "median_step_ms",
    ("trace s", "trace_seconds"), ("first step s", "first_step_seconds"),
    ("threads", lambda r: "{intra_op}/{inter_op}".format(**r["threads"]) if r.get("threads") else "-"),
    ("load 1 min, start / end", lambda r: f"{harness.fmt(r.get('load_at_start'), digits=2)} / "
     f"{harness.fmt((r['environment'].get('load_average') or [None])[0], digits=2)}"),
)  # fmt: skip


def describe(records):
    """The data, model, recipe and clock of the run, from its records."""
    first = next((r for r in records if r.get("text")), records[0])
    r, text = first["recipe"], first.get("text") or {}
    kernels = "; ".join(sorted({f"{x['system']}: {x['kernel']}" for x in records if x.get("kernel")}))
    return (
        f"Text: {first['text_name']} ({text.get('source', '?')}, sha256 "
        f"{text.get('sha256', '?')[:12]}), {first.get('train_characters', '?'):,} training and "
        f"{first.get('test_characters', '?'):,} held-out characters (the last 10 %), "
        f"{first.get('vocabulary_size', '?')} symbols. Model: Embedding 64 -> {r['layers']}-layer "
        f"{r['cell'].upper()}-{r['units']} -> Dense. Recipe (`tfrnn.tasks.language_model.config."
        f"Config()`'s defaults): {r['batch_size']} streams, {r['optimizer']} "
        f"{r['learning_rate']:g}, gradients clipped to global norm {r['clip_norm']:g}, "
        f"{r['schedule']} rate, TensorFlow threads {r['intra_op_threads']}/"
        f"{r['inter_op_threads']} (intra/inter; PyTorch: as many intra-op threads), op "
        f"determinism {'on' if r['deterministic'] else 'off'}; one seed ({first['seed']}). "
        f"Kernels: {kernels}."
    )  # fmt: skip


NOTES = (
    "Each system trained in a process of its own, one at a time: none ran beside another of "
    "this experiment, but the 2-core machine is shared with other work (the load column: "
    "the 1-minute load average when the process started and when it ended). Train s: the "
    "training seconds (wall clock less evaluations) of the last evaluation; a run stops at its "
    "first evaluation at or past its budget; outside steps: the part of them not in a training "
    "step (tracing, a new epoch's data, tfrnn's epoch-end checkpoints). Bpc at the budget: linear between the two "
    "evaluations around it; best: the lowest within the budget. Evaluations every "
    "`eval_every_characters` characters of each stream and at epoch ends, the held-out streams "
    "read chunk by chunk with the state carried (the tail of each stream shorter than a chunk "
    "is not read: at a larger K a little less of the held-out text is scored). Weights start "
    "from each framework's own initialisers (PyTorch's LSTM: uniform, two biases)."
)


def markdown(records, png):
    systems = [r for r in records if r["part"] == "systems"]
    sweep = [r for r in records if r["part"] == "bptt sweep"]
    title = "Character-level language model: held-out bits per character against training time"
    text = harness.header(title, records, describe(records), NOTES)
    if systems:
        text += (f"## Same model, recipe and time ({systems[0]['seconds']:g} s of training each, "
                 f"K={systems[0]['bptt']})\n\n{harness.table(systems, COLUMNS)}\n\n"
                 f"{systems_verdict(records)}\n\n")  # fmt: skip
    if sweep:
        text += (f"## Chunk length K, tfrnn_dynamic ({sweep[0]['seconds']:g} s of training "
                 f"each)\n\n{harness.table(sweep, COLUMNS)}\n\n{bptt_verdict(records)}\n\n")  # fmt: skip
    return text + f"![held-out bpc against training seconds]({pathlib.Path(png).name})\n"


def plot(path, records, quick):
    """Held-out bpc against training seconds: the systems, then the sweep's K (dashed)."""
    series = []
    for i, r in enumerate(r for r in records if r.get("evaluations")):
        system, key = r["part"] == "systems", "test_bpc" if r["part"] == "systems" else "sweep_test_bpc"
        style = {} if system else {"linestyle": "--", "color": f"C{i % 10}"}
        points = [{"x": e["train_seconds"], key: e["test_bpc"]} for e in r["evaluations"]]
        series.append((r["system"] if system else f"tfrnn_dynamic K={r['bptt']}", points, style))
    if series:
        title = "Character-level LSTM language model" + " (quick)" * quick
        harness.plot(path, ["test_bpc", "sweep_test_bpc"], series, title,
                     "training seconds (evaluations excluded)", xscale="linear", yscale="linear")  # fmt: skip


if __name__ == "__main__":
    harness.main(__import__(__name__))
