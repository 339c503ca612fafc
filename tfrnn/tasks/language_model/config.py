"""The language model's run: `RunConfig` and the fields of its text, its
chunks and its target. No TensorFlow here (the CLIs read it for `--help`)."""

import dataclasses

from tfrnn.training.config import RunConfig
from tfrnn.training.errors import ConfigError


@dataclasses.dataclass
class Config(RunConfig):
    """One language-model run; the defaults train an LSTM-256 on Python source."""

    task: str = "language_model"
    text: str = None  # None: Python's own standard library (`data.stdlib_text`)
    bptt: int = 100
    target_bpc: float = 1.9
    # The recipe, measured on a 2-core CPU (README's language-model section): 64 streams,
    # Adam 1e-2 (RunConfig's; 2e-3 and 5e-3 learned slower: 3.23 and 2.66 bits after one
    # epoch, against 2.52), clipped to global norm 5, constant (a cosine decay to a tenth over
    # 6 epochs: 1.855 against 1.87 bits at epoch 6, 1.838 against 1.875 at epoch 7.4).
    units: int = 256
    batch_size: int = 64
    clip_norm: float = 5.0
    schedule: str = "constant"
    max_epochs: int = 8
    eval_every_steps: int = 200
    checkpoint_every_steps: int = 50
    log_every_steps: int = 10
    model_dir: str = "runs/language_model"

    HELP = {
        **RunConfig.HELP,
        "text": "A UTF-8 text file to learn (default: a fixed selection of about 1.5 MB "
        "of Python's own standard library); its last 10 % is held out.",
        "bptt": "Characters per chunk of truncated backpropagation through time (the "
        "state is carried from chunk to chunk, the gradient is not).",
        "target_bpc": "Stop at this held-out bits per character.",
    }
    RESUMABLE = (*RunConfig.RESUMABLE, "target_bpc")

    def validate(self):
        super().validate()
        if self.bptt < 1:
            raise ConfigError(f"--bptt={self.bptt} must be >= 1 (e.g. 100 characters)")
        if not self.target_bpc > 0:
            raise ConfigError(f"--target_bpc={self.target_bpc} must be > 0, e.g. 2.0")
