"""Stock references for the benchmark: Keras 3 `LSTM` under `model.fit`, and PyTorch.

`train_keras` and `train_torch` train a classifier until the test accuracy
reaches `target` (or `max_epochs`) and return the fields of tfrnn's run report
where they apply, measured as `tfrnn.loop` measures them (one `Clock`):
`seconds_to_target` (wall clock from the start of training to the end of the
evaluation that reached the target), `train_seconds_to_target` (the same less
evaluations, and less nothing else), `step_seconds_to_target` (the timed
steps), `first_step_seconds` (Keras: it traces and compiles) and
`median_step_ms` (the other steps). Evaluations on the whole test set every
`eval_every_steps` steps and at epoch ends (`tfrnn.clock.Clock`, the clock of
tfrnn's own loop); epochs drop the last partial batch.

TensorFlow, Keras and PyTorch are imported inside the functions: the PyTorch
worker loads no TensorFlow (PyTorch is never a dependency of this project).
"""

import math
import os
import time

from experiments import harness
from tfrnn.clock import Clock  # TF-free: tfrnn's own evaluation clock
from tfrnn.config import COSINE_FLOOR, EVAL_BATCH  # TF-free

# --- Keras -------------------------------------------------------------------


def traced_ops(function):
    """Op types of every graph traced by `function` (a `tf.function` or a
    callable whose closure holds one, as Keras's `model.train_function`), and
    whether XLA compiles one; `(None, None)` when nothing was traced."""
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
        wrapped = getattr(obj, "__wrapped__", None) or getattr(obj, "_python_function", None)
        if wrapped is not None:
            collect(wrapped, depth + 1)

    collect(function, 0)
    ops, xla = set(), False
    for concrete in graphs:
        graph_def = concrete.graph.as_graph_def()
        ops.update(node.op for node in graph_def.node)
        ops.update(node.op for f in graph_def.library.function for node in f.node_def)
        for f in [concrete.function_def, *graph_def.library.function]:
            xla = xla or f.attr["_XlaMustCompile"].b
    return (ops, xla) if graphs else (None, None)


def keras_kernel(model, ops):
    """The recurrence kernel the traced train function runs: cuDNN only when
    a `CudnnRNN*` op is in the graph (`use_cudnn="auto"` falls back silently)."""
    import keras

    lstm = next(layer for layer in model.layers if isinstance(layer, keras.layers.RNN))
    generic = "generic unrolled" if lstm.unroll else "generic while_loop"
    if ops is None:
        return f"{generic} (not verified: no traced graph found)"
    if any(op.startswith("CudnnRNN") for op in ops):
        return "cuDNN"
    if lstm.unroll or ops & {"While", "StatelessWhile"}:
        return generic
    return "generic (no while loop found)"


def train_keras(model, data, recipe, target, max_epochs, eval_every_steps, seed, log=print):
    """`model.fit` on `tf.data` until the test accuracy >= target.

    `data`: float32 `x_train [N, T, F]`, int `y_train`, `x_test`, `y_test`.
    `recipe`: the bench's recipe values. A callback times every batch (at
    `on_train_batch_end` Keras has turned the loss into a Python float: the
    step has finished), evaluates on the schedule and stops at the target.
    """
    import keras
    import tensorflow as tf

    from tfrnn import data as data_lib
    from tfrnn import config as config_lib
    from tfrnn import state

    batch_size = recipe["batch_size"]
    steps_per_epoch = _steps_per_epoch(len(data.x_train), batch_size)
    names = ("optimizer", "learning_rate", "clip_norm", "schedule", "decay_epochs")
    config = config_lib.Config(**{name: recipe[name] for name in names})
    config.validate()  # a bad value is refused as tfrnn.train refuses it
    model.compile(optimizer=state.make_optimizer(config, steps_per_epoch), metrics=["accuracy"],
                  loss="sparse_categorical_crossentropy", jit_compile=recipe["jit_compile"])  # fmt: skip
    train = data_lib.make_dataset(data.x_train, data.y_train, batch_size, shuffle=True, seed=seed,
                                  drop_remainder=True)  # fmt: skip
    test = data_lib.make_dataset(data.x_test, data.y_test, EVAL_BATCH, shuffle=False)
    clock = Clock(target, eval_every_steps, steps_per_epoch, log)

    class Tracker(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if clock.stepped(time.perf_counter() - self.started):
                started = time.perf_counter()
                result = self.model.evaluate(test, verbose=0, return_dict=True)
                seconds = time.perf_counter() - started
                if clock.evaluated(float(result["accuracy"]), seconds):
                    self.model.stop_training = True

    clock.begin()
    model.fit(train, epochs=max_epochs, verbose=0, shuffle=False, callbacks=[Tracker()])
    ops, xla = traced_ops(model.train_function)
    return {
        **clock.result(batch_size),
        "kernel": keras_kernel(model, ops),
        "xla": bool(model.jit_compile) if xla is None else xla,
        "parameters": int(model.count_params()),
        "peak_memory_bytes": harness.peak_memory_bytes(),
        "gpu": bool(tf.config.list_physical_devices("GPU")),
    }


def _steps_per_epoch(examples, batch_size):
    if examples < batch_size:
        raise ValueError(f"batch_size={batch_size} is larger than the {examples} training examples")
    return examples // batch_size


# --- PyTorch -----------------------------------------------------------------


def cosine_decay(step, decay_steps):
    """The learning-rate factor of Keras's `CosineDecay(alpha=COSINE_FLOOR)`."""
    cosine = 0.5 * (1 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
    return COSINE_FLOOR + (1 - COSINE_FLOOR) * cosine


def torch_model(features, units, num_classes, device):
    """`nn.LSTM(F, units, batch_first=True)` + `nn.Linear` on the last output.

    PyTorch's LSTM has two bias vectors: 4 * units parameters more than
    Keras's and tfrnn's, the same function.
    """
    from torch import nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(features, units, batch_first=True)
            self.dense = nn.Linear(units, num_classes)

        def forward(self, x):
            return self.dense(self.lstm(x)[0][:, -1])  # logits

    return Classifier().to(device)


def torch_optimizer(model, recipe, steps_per_epoch):
    """The recipe's optimizer and its per-step schedule (`cosine_decay`)."""
    import torch

    optimizers = dict(adam=torch.optim.Adam, sgd=torch.optim.SGD, rmsprop=torch.optim.RMSprop)
    if recipe["optimizer"] not in optimizers or recipe["schedule"] not in ("constant", "cosine"):
        raise ValueError(f"optimizer {recipe['optimizer']!r} / schedule {recipe['schedule']!r}: "
                         f"choose among {', '.join(optimizers)} / constant, cosine")  # fmt: skip
    optimizer = optimizers[recipe["optimizer"]](model.parameters(), lr=recipe["learning_rate"])
    decay_steps = max(1, round(recipe["decay_epochs"] * steps_per_epoch))
    cosine = recipe["schedule"] == "cosine"
    factor = lambda step: cosine_decay(step, decay_steps) if cosine else 1.0  # noqa: E731
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def torch_accuracy(model, x, y):
    """The share of `x` that `model` classifies as `y`, in batches of EVAL_BATCH."""
    import torch

    with torch.no_grad():
        correct = sum(int((model(x[i : i + EVAL_BATCH]).argmax(-1) == y[i : i + EVAL_BATCH]).sum())
                      for i in range(0, len(x), EVAL_BATCH))  # fmt: skip
    return correct / len(x)


def train_torch(data, recipe, target, max_epochs, eval_every_steps, seed, units, log=print):
    """`torch_model` trained as `train_keras` trains, epochs in tfrnn's order
    (a permutation seeded with `[seed, epoch]`). ImportError without PyTorch."""
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(bool(recipe["deterministic"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    arrays = (data.x_train, data.y_train.astype(np.int64), data.x_test, data.y_test.astype(np.int64))
    x_train, y_train, x_test, y_test = (torch.as_tensor(a, device=device) for a in arrays)
    batch_size = recipe["batch_size"]
    steps_per_epoch = _steps_per_epoch(len(x_train), batch_size)
    model = torch_model(x_train.shape[2], units, 10, device)
    optimizer, scheduler = torch_optimizer(model, recipe, steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss()
    clock = Clock(target, eval_every_steps, steps_per_epoch, log)
    clock.begin()
    for epoch in range(max_epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
        order = torch.as_tensor(order, device=device)
        for step in range(steps_per_epoch):
            started = time.perf_counter()
            indices = order[step * batch_size : (step + 1) * batch_size]
            loss = loss_fn(model(x_train[indices]), y_train[indices])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe["clip_norm"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip_norm"])
            optimizer.step()
            scheduler.step()
            loss.item()  # waits for the step (CUDA runs asynchronously)
            if clock.stepped(time.perf_counter() - started):
                started = time.perf_counter()
                accuracy = torch_accuracy(model, x_test, y_test)
                if clock.evaluated(accuracy, time.perf_counter() - started):
                    break
        if clock.reached:
            break
    cuda = device.type == "cuda"
    peak = int(torch.cuda.max_memory_allocated()) if cuda else harness.rss_bytes("VmHWM")
    return {
        **clock.result(batch_size),
        "kernel": "cuDNN" if cuda and torch.backends.cudnn.enabled else f"aten {device.type.upper()}",
        "xla": False,
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_memory_bytes": peak,
        "gpu": cuda,
        "extra": {"torch": torch.__version__, "torch_threads": torch.get_num_threads()},
    }  # fmt: skip
