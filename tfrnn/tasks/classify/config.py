"""The classifier's run: `RunConfig` and the fields of its data, model and
target. No TensorFlow here (the CLIs read it for `--help`)."""

import dataclasses

from tfrnn.training.config import RunConfig
from tfrnn.training.errors import ConfigError

SEQUENCES = ("rows", "columns", "pixels", "permuted")
# Pixels in [0, 1] (x / 255) or [-1, 1] ((x / 255 - 0.5) / 0.5, as torchvision's
# Normalize((0.5,), (0.5,)) after ToTensor).
NORMALIZATIONS = ("unit", "symmetric")
# Test-set batch of the evaluations: 10,000 MNIST rows took 0.64 s in batches
# of 5,000 against 0.88 s in batches of 1,000 (dynamic LSTM-128, 2-core CPU;
# experiments/README.md, "Evaluation batch").
EVAL_BATCH = 5000


@dataclasses.dataclass
class Config(RunConfig):
    """One classifier run; the defaults train LSTM-128 on MNIST rows to 98 %."""

    task: str = "classify"
    bidirectional: bool = False
    model: str = "rnn"
    dataset: str = "mnist"
    data_dir: str = None
    sequence: str = "rows"
    normalize: str = "unit"
    target_accuracy: float = 0.98
    train_examples: int = None
    test_examples: int = None

    CHOICES = {**RunConfig.CHOICES, "model": ("rnn", "cnn_rnn"), "sequence": SEQUENCES,
               "normalize": NORMALIZATIONS}
    HELP = {
        **RunConfig.HELP,
        "bidirectional": "Read the sequence both ways (keras.layers.Bidirectional "
        "over tfrnn.RNN; 2 x units features to the classes).",
        "model": "rnn, or cnn_rnn (conv features as a sequence).",
        "dataset": "mnist (shipped in the package), fashion_mnist (needs `apt-get install "
        "dataset-fashion-mnist`, or its files in --data_dir) or tfds:NAME (prepared TFDS "
        "data; nothing is downloaded).",
        "data_dir": "The directory of --dataset's files (default: the package's MNIST, "
        "/usr/share/datasets/fashion-mnist), or TFDS's data_dir.",
        "sequence": "rows (T=28: row t of the image at step t), columns (T=28: column t "
        "at step t, as PyTorch's x.permute(2, 0, 1) of [N, 28, 28] images), pixels (T=784) "
        "or permuted pixels.",
        "normalize": "Pixels as unit, in [0, 1] (x / 255), or symmetric, in [-1, 1] "
        "((x / 255 - 0.5) / 0.5, torchvision's Normalize((0.5,), (0.5,))).",
        "target_accuracy": "Stop at this test accuracy, in (0, 1].",
        "train_examples": "Use the first N training examples (default: all, 60,000 for "
        "mnist and fashion_mnist).",
        "test_examples": "Use the first N test examples (default: all, 10,000 for mnist "
        "and fashion_mnist).",
    }
    RESUMABLE = (*RunConfig.RESUMABLE, "target_accuracy")
    BEFORE_FIELD = {**RunConfig.BEFORE_FIELD, "bidirectional": False, "normalize": "unit"}

    def validate(self):
        super().validate()
        if self.dataset not in ("mnist", "fashion_mnist") and not self.dataset.startswith("tfds:"):
            raise ConfigError(
                f"--dataset={self.dataset} is not one of: mnist, fashion_mnist, tfds:NAME")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ConfigError(
                f"--target_accuracy={self.target_accuracy} must be in (0, 1], e.g. 0.98")
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"--{name}={getattr(self, name)} must be > 0 (or unset)")
        if self.model == "cnn_rnn" and self.sequence != "rows":
            raise ConfigError("--model=cnn_rnn reads images: use --sequence=rows")
