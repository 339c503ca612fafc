"""tfrnn: static and dynamic RNN unrolling with TF1's semantics on Keras 3 cells.

* `static_rnn`: the recurrence unrolled into the graph (TF1 `tf.nn.static_rnn`,
  Keras `unroll=True`); every step is a tensor of its own.
* `dynamic_rnn`: one cell in a `tf.while_loop` (TF1 `tf.nn.dynamic_rnn`, Keras
  `unroll=False`); the graph does not grow with the sequence length.

* `dynamic_rnn(..., unroll=k)`: the spectrum between them, a loop over
  blocks of k unrolled steps.
* `RNN`: the same as a Keras layer (masks, `Bidirectional`, `.keras` files);
  `bidirectional_dynamic_rnn`, `static_bidirectional_rnn`; TF1's own names,
  state types and checkpoints in `tfrnn.compat.v1.nn`.

Every unroll shares one step function and TF1's `sequence_length` rule, which
`mask=` extends to any pattern: at a step that does not count, the output is
zeros and the state is copied through.
"""

import importlib
import importlib.abc
import sys

__version__ = "0.1.0"

# The public names and their modules, imported on first use (PEP 562): a
# CLI's `--help` and `tfrnn.training.config` load no TensorFlow.
_PUBLIC = {
    "DropoutWrapper": "tfrnn.cells",
    "LSTMCell": "tfrnn.cells",
    "MultiRNNCell": "tfrnn.cells",
    "RNN": "tfrnn.layer",
    "bidirectional_dynamic_rnn": "tfrnn.bidirectional",
    "dynamic_rnn": "tfrnn.dynamic",
    "load_tf1_checkpoint": "tfrnn.tf1_checkpoint",
    "static_bidirectional_rnn": "tfrnn.bidirectional",
    "static_rnn": "tfrnn.static",
    "zero_state": "tfrnn.step",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'tfrnn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


# The modules of the classes a `.keras` file names (`tfrnn>RNN`, `tfrnn>LSTMCell`,
# ...): Keras finds them only once they are imported (it imports no module
# outside its own packages), so `import tfrnn` imports them as soon as Keras is
# imported, now or later, and no sooner: `--help` still loads no TensorFlow.
_KERAS_CLASSES = ("tfrnn.cells", "tfrnn.layer")


def _register_with_keras():
    for module in _KERAS_CLASSES:
        importlib.import_module(module)


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Finds `keras` as the other finders do, its loader made to run
    `_register_with_keras` right after Keras's own module; it leaves
    `sys.meta_path` once Keras is imported (a mere `find_spec("keras")`, as
    TensorFlow's import makes, imports nothing)."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        spec = next(filter(None, (finder.find_spec(name, path, target)
                                  for finder in sys.meta_path if finder is not self
                                  and hasattr(finder, "find_spec"))), None)  # fmt: skip
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def exec_then_register(module):
                exec_module(module)
                if self in sys.meta_path:
                    sys.meta_path.remove(self)
                _register_with_keras()

            spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    _register_with_keras()
elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AfterKeras())
