"""Stock references for the benchmark: Keras 3 `LSTM` under `model.fit`, and PyTorch.

Each `train_*` function trains one classifier until the test accuracy reaches
`target` (or `max_epochs`) and returns one result record (a dict) with the
fields of tfrnn's run report where they apply, all measured the same way:

* `seconds_to_target`: wall clock from the start of training (Keras: the call
  of `fit`) to the end of the evaluation that reached the target, evaluations
  included.
* `train_seconds_to_target`: the same wall clock less the evaluation time, and
  less nothing else: graph tracing, XLA compiling, data pipeline stalls and
  per-step overhead all count.
* `step_seconds_to_target`: the sum of the timed training steps (the first
  step included) up to the target.
* `first_step_seconds`: the first step alone (Keras: it traces and compiles the
  train function); `median_step_ms` is over the other steps.

Evaluations run on the whole test set every `eval_every_steps` steps and at the
end of each epoch, the same schedule as `tfrnn.training`. Epochs drop the last
partial batch, as `tfrnn.training` does.

TensorFlow, Keras and PyTorch are imported inside the functions, so that a
process training with one does not carry the other's memory: PyTorch is never
a dependency of this project; `train_torch` raises ImportError without it.
"""

import math
import os
import resource
import statistics
import time

# tfrnn.training.COSINE_FLOOR, not imported: the PyTorch worker loads no TensorFlow.
COSINE_FLOOR = 0.1
EVAL_BATCH = 5000  # test set batch: tfrnn.training.EVAL_BATCH (no TF import here)


def keras_lstm_classifier(
    units=128,
    time_steps=28,
    features=28,
    num_classes=10,
    unroll=False,
    use_cudnn="auto",
):
    """`keras.Input((T, F))` -> `keras.layers.LSTM(units)` -> softmax `Dense`."""
    import keras

    inputs = keras.Input((time_steps, features))
    hidden = keras.layers.LSTM(units, unroll=unroll, use_cudnn=use_cudnn)(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(hidden)
    return keras.Model(inputs, outputs)


class _Clock:
    """Step times, evaluation times and the evaluation records of one run."""

    def __init__(self, target, eval_every_steps, steps_per_epoch, log):
        self.target = target
        self.eval_every_steps = eval_every_steps
        self.steps_per_epoch = steps_per_epoch
        self.log = log
        self.start = None
        self.step = 0
        self.first_step_seconds = None
        self.step_seconds = []  # every step after the first
        self.step_sum = 0.0
        self.eval_seconds = 0.0
        self.evaluations = []
        self.reached = False

    def begin(self):
        self.start = time.perf_counter()

    def stepped(self, seconds):
        """Records one step; returns whether the schedule says to evaluate now."""
        self.step += 1
        if self.first_step_seconds is None:
            self.first_step_seconds = seconds
        else:
            self.step_seconds.append(seconds)
        self.step_sum += seconds
        return (
            self.step % self.eval_every_steps == 0
            or self.step % self.steps_per_epoch == 0
        )

    def evaluated(self, accuracy, seconds):
        """Records an evaluation that took `seconds`; returns whether it reached."""
        self.eval_seconds += seconds
        wall = time.perf_counter() - self.start
        record = {
            "step": self.step,
            "epoch": round(self.step / self.steps_per_epoch, 3),
            "seconds": round(wall, 3),
            "train_seconds": round(wall - self.eval_seconds, 3),
            "step_seconds": round(self.step_sum, 3),
            "test_accuracy": accuracy,
        }
        self.evaluations.append(record)
        self.log(
            f"evaluation at step {self.step} (epoch {record['epoch']}): test accuracy "
            f"{accuracy:.4f} after {record['seconds']:.1f} s"
        )
        if accuracy >= self.target:
            self.reached = True
        return self.reached

    def result(self, batch_size):
        """The run's fields; the run's wall clock ends with its last evaluation."""
        last = self.evaluations[-1] if self.evaluations else None
        wall = last["seconds"] if last else time.perf_counter() - self.start
        at_target = next(
            (e for e in self.evaluations if e["test_accuracy"] >= self.target), None
        )
        median = (
            1000.0 * statistics.median(self.step_seconds) if self.step_seconds else None
        )
        return {
            "target_reached": at_target is not None,
            "seconds_to_target": at_target["seconds"] if at_target else None,
            "train_seconds_to_target": at_target["train_seconds"]
            if at_target
            else None,
            "step_seconds_to_target": at_target["step_seconds"] if at_target else None,
            "epochs_to_target": at_target["epoch"] if at_target else None,
            "steps_to_target": at_target["step"] if at_target else None,
            "trace_seconds": None,  # not separable: inside the first step
            "first_step_seconds": self.first_step_seconds,
            "median_step_ms": median,
            "examples_per_second": batch_size / median * 1000 if median else None,
            "steps_timed": len(self.step_seconds),
            "steps": self.step,
            "wall_seconds": wall,
            "train_seconds": wall - self.eval_seconds,
            "step_seconds": self.step_sum,
            "eval_seconds": self.eval_seconds,
            "evaluations": self.evaluations,
        }


def _host_peak_bytes():
    """`tfrnn.report.host_peak_bytes` without importing tfrnn, which would load
    TensorFlow (and its memory) into the PyTorch worker being measured."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- Keras -------------------------------------------------------------------


def traced_ops(function):
    """Op types in every graph traced by `function`, and whether XLA compiles one.

    `function` is a `tf.function`, or a Python callable whose closure holds
    them (Keras 3's `model.train_function`): nested functions, gradients and
    while-loop bodies are read from each graph's function library. Returns
    `(set of op types, XLA flag)`, or `(None, None)` when nothing was traced.
    """
    seen, graphs = set(), []

    def collect(obj, depth):
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if hasattr(obj, "_list_all_concrete_functions"):
            graphs.extend(obj._list_all_concrete_functions())
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                collect(cell.cell_contents, depth + 1)
            except ValueError:  # an empty cell
                pass
        wrapped = getattr(obj, "__wrapped__", None) or getattr(
            obj, "_python_function", None
        )
        if wrapped is not None:
            collect(wrapped, depth + 1)

    collect(function, 0)
    if not graphs:
        return None, None
    ops, xla = set(), False
    for concrete in graphs:
        graph_def = concrete.graph.as_graph_def()
        ops.update(node.op for node in graph_def.node)
        xla = xla or concrete.function_def.attr["_XlaMustCompile"].b
        for function_def in graph_def.library.function:
            ops.update(node.op for node in function_def.node_def)
            xla = xla or function_def.attr["_XlaMustCompile"].b
    return ops, xla


def keras_kernel(model, ops):
    """Names the recurrence kernel that the traced train function runs.

    cuDNN is named only when a `CudnnRNN*` op (Keras 3 calls `CudnnRNNV3`) is in
    the traced graph: `use_cudnn="auto"` falls back silently to the generic
    loop when there is no GPU or the layer's arguments do not allow cuDNN.
    """
    import keras

    lstm = next(layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
    if ops is None:
        generic = "generic unrolled" if lstm.unroll else "generic while_loop"
        return f"{generic} (not verified: no traced graph found)"
    if any(op.startswith("CudnnRNN") for op in ops):
        return "cuDNN"
    if lstm.unroll:
        return "generic unrolled"
    if ops & {"While", "StatelessWhile"}:
        return "generic while_loop"
    return "generic (no while loop found)"


def train_keras(
    model,
    data,
    *,
    batch_size,
    learning_rate,
    target,
    max_epochs,
    eval_every_steps,
    seed,
    log=print,
    optimizer="adam",
    jit_compile=False,
    clip_norm=None,
    schedule="constant",
    decay_epochs=3.0,
):
    """Trains `model` with `model.fit` on `tf.data` until the test accuracy >= target.

    `data` has float32 `x_train [N, T, F]`, int `y_train`, `x_test`, `y_test`
    (a `tfrnn.data.Data` will do). A callback times every batch
    (`on_train_batch_begin` -> `on_train_batch_end`, where Keras has already
    turned the step's loss into a Python float, so the step has finished),
    evaluates with `model.evaluate` on the schedule and stops `fit` at the target.
    """
    import keras
    import tensorflow as tf

    from tfrnn import data as data_lib
    from tfrnn import training

    steps_per_epoch = len(data.x_train) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size={batch_size} is larger than the "
            f"{len(data.x_train)} training examples"
        )
    recipe = training.Config(
        optimizer=optimizer,
        learning_rate=learning_rate,
        clip_norm=clip_norm,
        schedule=schedule,
        decay_epochs=decay_epochs,
    )
    recipe.validate()  # a bad value is refused as tfrnn.train refuses it
    model.compile(
        optimizer=training.make_optimizer(recipe, steps_per_epoch),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    train = data_lib.make_dataset(
        data.x_train,
        data.y_train,
        batch_size,
        shuffle=True,
        seed=seed,
        drop_remainder=True,
    )
    test = data_lib.make_dataset(data.x_test, data.y_test, EVAL_BATCH, shuffle=False)
    clock = _Clock(target, eval_every_steps, steps_per_epoch, log)

    epoch_start_ms = []  # previous step's end (or fit's start) -> epoch's 1st step

    class Tracker(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.batch_start = time.perf_counter()
            if batch == 0:
                epoch_start_ms.append(1000.0 * (self.batch_start - self.last_end))

        def on_train_batch_end(self, batch, logs=None):
            seconds = time.perf_counter() - self.batch_start
            if clock.stepped(seconds):
                started = time.perf_counter()
                accuracy = self.model.evaluate(test, verbose=0, return_dict=True)[
                    "accuracy"
                ]
                if clock.evaluated(float(accuracy), time.perf_counter() - started):
                    self.model.stop_training = True
            self.last_end = time.perf_counter()

    tracker = Tracker()

    clock.begin()
    tracker.last_end = clock.start
    model.fit(train, epochs=max_epochs, verbose=0, shuffle=False, callbacks=[tracker])
    result = clock.result(batch_size)
    ops, xla = traced_ops(model.train_function)
    from tfrnn import report

    result.update(
        kernel=keras_kernel(model, ops),
        xla=bool(model.jit_compile) if xla is None else xla,
        parameters=int(model.count_params()),
        peak_memory_bytes=report.peak_memory_bytes(),
        gpu=bool(tf.config.list_physical_devices("GPU")),
        extra={"epoch_start_ms": [round(ms, 1) for ms in epoch_start_ms]},
    )
    return result


# --- PyTorch -----------------------------------------------------------------


def cosine_decay(step, decay_steps):
    """The learning-rate factor of Keras's `CosineDecay(alpha=COSINE_FLOOR)`."""
    cosine = 0.5 * (1 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
    return COSINE_FLOOR + (1 - COSINE_FLOOR) * cosine


def train_torch(
    data,
    *,
    batch_size,
    learning_rate,
    target,
    max_epochs,
    eval_every_steps,
    seed,
    log=print,
    units=128,
    optimizer="adam",
    deterministic=False,
    clip_norm=None,
    schedule="constant",
    decay_epochs=3.0,
):
    """`nn.LSTM(F, units, batch_first=True)` + `nn.Linear`, Adam, cross-entropy.

    PyTorch's LSTM has two bias vectors (`b_ih`, `b_hh`): 4 * units parameters
    more than Keras's and tfrnn's, the same function.

    `schedule="cosine"` decays the learning rate per step as
    `tfrnn.training.make_optimizer` does (`cosine_decay`).
    Epochs follow `tfrnn.training`'s order (a permutation seeded with
    `[seed, epoch]`, the last partial batch dropped). Raises ImportError when
    PyTorch is not installed.
    """
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    features = data.x_train.shape[2]
    num_classes = int(max(data.y_train.max(), data.y_test.max())) + 1

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(features, units, batch_first=True)
            self.dense = nn.Linear(units, num_classes)

        def forward(self, x):
            outputs, _ = self.lstm(x)
            return self.dense(outputs[:, -1])  # logits

    model = Classifier().to(device)
    optimizers = {
        "adam": torch.optim.Adam,
        "sgd": torch.optim.SGD,
        "rmsprop": torch.optim.RMSprop,
    }
    if optimizer not in optimizers:
        raise ValueError(
            f"optimizer {optimizer!r} is not one of: {', '.join(optimizers)}"
        )
    opt = optimizers[optimizer](model.parameters(), lr=learning_rate)
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule {schedule!r} is not one of: constant, cosine")
    loss_fn = nn.CrossEntropyLoss()
    x_train = torch.as_tensor(np.asarray(data.x_train), device=device)
    y_train = torch.as_tensor(np.asarray(data.y_train, np.int64), device=device)
    x_test = torch.as_tensor(np.asarray(data.x_test), device=device)
    y_test = torch.as_tensor(np.asarray(data.y_test, np.int64), device=device)
    steps_per_epoch = len(x_train) // batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size={batch_size} is larger than the "
            f"{len(x_train)} training examples"
        )
    decay_steps = max(1, round(decay_epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda step: cosine_decay(step, decay_steps) if schedule == "cosine" else 1.0,
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def evaluate():
        model.eval()
        correct = 0
        with torch.no_grad():
            for start in range(0, len(x_test), EVAL_BATCH):
                logits = model(x_test[start : start + EVAL_BATCH])
                correct += int(
                    (logits.argmax(-1) == y_test[start : start + EVAL_BATCH]).sum()
                )
        model.train()
        return correct / len(x_test)

    clock = _Clock(target, eval_every_steps, steps_per_epoch, log)
    clock.begin()
    for epoch in range(max_epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
        order = torch.as_tensor(order, device=device)
        for step in range(steps_per_epoch):
            started = time.perf_counter()
            indices = order[step * batch_size : (step + 1) * batch_size]
            logits = model(x_train[indices])
            loss = loss_fn(logits, y_train[indices])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            opt.step()
            scheduler.step()
            loss.item()  # waits for the step (CUDA runs asynchronously)
            if not clock.stepped(time.perf_counter() - started):
                continue
            started = time.perf_counter()
            accuracy = evaluate()
            if clock.evaluated(accuracy, time.perf_counter() - started):
                break
        if clock.reached:
            break
    result = clock.result(batch_size)
    if device.type != "cuda":
        kernel = "aten CPU"
    elif torch.backends.cudnn.is_available() and torch.backends.cudnn.enabled:
        kernel = "cuDNN"  # nn.LSTM on CUDA calls cuDNN whenever it is enabled
    else:
        kernel = "aten CUDA"
    result.update(
        kernel=kernel,
        xla=False,
        parameters=sum(p.numel() for p in model.parameters()),
        peak_memory_bytes=int(torch.cuda.max_memory_allocated())
        if device.type == "cuda"
        else _host_peak_bytes(),
        gpu=device.type == "cuda",
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
    )
    return result
