"""Stock references for the benchmark: Keras 3 `LSTM` under `model.fit`, PyTorch `nn.LSTM`.

Both train on `write_data`'s npz to `target`, timed by tfrnn's own `Clock`. TensorFlow, Keras
and PyTorch are imported inside the functions: the PyTorch worker loads no TensorFlow."""

import importlib.util
import math
import os
import time
import types

import numpy as np

from experiments import harness
from tfrnn.training.clock import Clock, Target  # TF-free: tfrnn's own evaluation clock
from tfrnn.tasks.classify.config import EVAL_BATCH, Config  # TF-free
from tfrnn.training.config import COSINE_FLOOR  # TF-free


def write_data(path, train=None, test=None):
    """MNIST rows (float32 `[N, 28, 28]`; the first `train` / `test` examples) as the npz `path`."""
    from tfrnn.tasks.classify import data

    a = data.load_arrays("mnist")
    np.savez(path, x_train=data.to_sequences(a.x_train[:train]), y_train=a.y_train[:train],
             x_test=data.to_sequences(a.x_test[:test]), y_test=a.y_test[:test])


def unavailable(system):
    """None when `system` can run here, else why not."""
    if system == "torch" and importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (`pip install torch`; never a tfrnn dependency)"
    if system == "keras_cudnn":
        import tensorflow as tf

        gpu = tf.config.list_physical_devices("GPU")
        return None if gpu else "no GPU visible to TensorFlow: cuDNN cannot run"
    return None


def traced_ops(function):
    """Op types of every graph traced by `function` (a `tf.function`, or a callable whose closure
    holds one, as Keras's `model.train_function`) and whether XLA compiles one; `(None, None)`
    when nothing was traced."""
    seen, graphs, todo = set(), [], [function]
    while todo:
        obj = todo.pop()
        if obj is None or id(obj) in seen:
            continue
        seen.add(id(obj))
        if hasattr(obj, "_list_all_concrete_functions"):
            graphs.extend(obj._list_all_concrete_functions())
        todo += [getattr(obj, "__wrapped__", None), getattr(obj, "_python_function", None)]
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                todo.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
    ops, xla = set(), False
    for concrete in graphs:
        graph, functions = concrete.graph.as_graph_def(), [concrete.function_def]
        functions += graph.library.function
        ops.update([node.op for node in graph.node], (n.op for f in functions for n in f.node_def))
        xla = xla or any(f.attr["_XlaMustCompile"].b for f in functions)
    return (ops, xla) if graphs else (None, None)


def keras_kernel(unroll, ops):
    """The recurrence kernel that the traced train function runs: cuDNN only when a `CudnnRNN*`
    op is in its graph (`use_cudnn="auto"` falls back silently)."""
    generic = "generic unrolled" if unroll else "generic while_loop"
    if ops is None:
        return f"{generic} (not verified: no traced graph found)"
    if any(op.startswith("CudnnRNN") for op in ops):
        return "cuDNN"
    return generic if unroll or ops & {"While", "StatelessWhile"} else "generic (no while loop found)"


def train_keras(data, recipe, target, max_epochs, eval_every_steps, seed, units,
                system="keras_while", log=print):  # fmt: skip
    """`harness.build_model(system)` trained by `fit` on `tf.data`. A callback times every batch
    (at `on_train_batch_end` Keras has turned the loss into a Python float: the step has
    finished), evaluates on the schedule and stops at the target."""
    import keras
    import tensorflow as tf

    from tfrnn.tasks.classify import data as data_lib
    from tfrnn.training import optimizers

    data = types.SimpleNamespace(**np.load(data))
    keras.utils.set_random_seed(seed)
    if recipe["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    model, batch_size = harness.build_model(system, "lstm", units), recipe["batch_size"]
    config, steps_per_epoch = _checked(recipe, len(data.x_train))
    optimizer = optimizers.make_optimizer(config, steps_per_epoch)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=recipe["jit_compile"])  # fmt: skip
    train = data_lib.make_dataset(data.x_train, data.y_train, batch_size, shuffle=True, seed=seed,
                                  drop_remainder=True)  # fmt: skip
    test = data_lib.make_dataset(data.x_test, data.y_test, EVAL_BATCH, shuffle=False)
    clock = Clock(Target("test_accuracy", target), eval_every_steps, steps_per_epoch, log)

    class Tracker(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if clock.stepped(time.perf_counter() - self.started):
                started = time.perf_counter()
                accuracy = self.model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
                if clock.evaluated({"test_accuracy": float(accuracy)}, time.perf_counter() - started):
                    self.model.stop_training = True

    clock.begin()
    model.fit(train, epochs=max_epochs, verbose=0, shuffle=False, callbacks=[Tracker()])
    ops, xla = traced_ops(model.train_function)
    return {**clock.result(batch_size), "kernel": keras_kernel(model.get_layer(system).unroll, ops),
            "xla": bool(model.jit_compile) if xla is None else xla, "parameters": model.count_params(),
            "peak_memory_bytes": harness.peak_memory_bytes(),
            "gpu": bool(tf.config.list_physical_devices("GPU"))}  # fmt: skip


def _checked(recipe, examples):
    """The recipe as a Config, refused as tfrnn.train refuses a bad value; its steps per epoch."""
    keys = ("optimizer", "learning_rate", "clip_norm", "schedule", "decay_epochs", "batch_size")
    config = Config(**{key: recipe[key] for key in keys})
    config.validate()
    if examples < config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} is larger than the {examples} "
                         "training examples")
    return config, examples // config.batch_size


def cosine_decay(step, decay_steps):
    """The learning-rate factor of Keras's `CosineDecay(alpha=COSINE_FLOOR)`."""
    cosine = 0.5 * (1 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
    return COSINE_FLOOR + (1 - COSINE_FLOOR) * cosine


def torch_classifier(features, units, device):
    """`nn.LSTM` + `nn.Linear` on the last output (logits): 4 * units parameters more than
    Keras's LSTM (two bias vectors), the same function."""
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(features, units, batch_first=True)
            self.dense = torch.nn.Linear(units, 10)

        def forward(self, x):
            return self.dense(self.lstm(x)[0][:, -1])

    return Classifier().to(device)


def train_torch(data, recipe, target, max_epochs, eval_every_steps, seed, units, log=print):
    """`torch_classifier` trained as `train_keras` trains, epochs in tfrnn's order (a permutation
    seeded with `[seed, epoch]`), the rate per step as Keras's schedule sets it (`cosine_decay`)."""
    import torch

    data = types.SimpleNamespace(**np.load(data))
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(bool(recipe["deterministic"]))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    arrays = (data.x_train, data.y_train.astype(np.int64), data.x_test, data.y_test.astype(np.int64))
    x_train, y_train, x_test, y_test = (torch.as_tensor(a, device=device) for a in arrays)
    (config, steps_per_epoch), batch = _checked(recipe, len(x_train)), recipe["batch_size"]
    model = torch_classifier(x_train.shape[2], units, device)
    optimizer = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}[
        config.optimizer](model.parameters(), lr=config.learning_rate)  # fmt: skip
    decay_steps = max(1, round(config.decay_epochs * steps_per_epoch))
    cosine = config.schedule == "cosine"
    factor = lambda step: cosine_decay(step, decay_steps) if cosine else 1.0  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    clock = Clock(Target("test_accuracy", target), eval_every_steps, steps_per_epoch, log)
    clock.begin()
    for epoch in range(max_epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
        order = torch.as_tensor(order, device=device)
        for step in range(steps_per_epoch):
            started = time.perf_counter()
            indices = order[step * batch : (step + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(x_train[indices]), y_train[indices])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
            optimizer.step()
            scheduler.step()
            loss.item()  # waits for the step (CUDA runs asynchronously)
            if clock.stepped(time.perf_counter() - started):
                started = time.perf_counter()
                with torch.no_grad():  # in batches of EVAL_BATCH, as tfrnn and Keras evaluate
                    batches = range(0, len(x_test), EVAL_BATCH)
                    logits = torch.cat([model(x_test[i : i + EVAL_BATCH]) for i in batches])
                accuracy = float((logits.argmax(-1) == y_test).double().mean())
                if clock.evaluated({"test_accuracy": accuracy}, time.perf_counter() - started):
                    break
        if clock.reached:
            break
    cuda = device.type == "cuda"
    peak = int(torch.cuda.max_memory_allocated()) if cuda else harness.rss_bytes("VmHWM")
    return {**clock.result(batch), "xla": False, "gpu": cuda, "peak_memory_bytes": peak,
            "kernel": "cuDNN" if cuda and torch.backends.cudnn.enabled else f"aten {device.type.upper()}",
            "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip
