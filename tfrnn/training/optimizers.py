"""The optimizer of a run's config, with its learning-rate schedule."""

import keras

from tfrnn.training.config import ADADELTA_EPSILON
from tfrnn.training.config import ADADELTA_RHO
from tfrnn.training.config import COSINE_FLOOR

OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    # PyTorch's rho and epsilon: with them Keras's update is torch.optim.Adadelta's,
    # delta = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g, x -= lr * delta.
    "adadelta": lambda **kwargs: keras.optimizers.Adadelta(
        rho=ADADELTA_RHO, epsilon=ADADELTA_EPSILON, **kwargs
    ),
}


def make_optimizer(config, steps_per_epoch):
    """The optimizer, its learning rate constant or cosine-decayed per step.

    `cosine`: `lr * (FLOOR + (1 - FLOOR) * (1 + cos(pi * min(step, D) / D)) / 2)`
    with `D` the steps of `decay_epochs` epochs: from `lr` down to
    `FLOOR * lr`, then constant there, so that a run that has not reached its
    target by then still learns (decayed to 0, one stalled at 97.7 % for 15
    epochs). The step is the optimizer's own count, saved in checkpoints, so a
    resumed run continues the decay.
    """
    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate,
            max(1, round(config.decay_epochs * steps_per_epoch)),
            alpha=COSINE_FLOOR,
        )
    kwargs = {"learning_rate": learning_rate}
    if config.clip_norm:
        kwargs["global_clipnorm"] = config.clip_norm
    return OPTIMIZERS[config.optimizer](**kwargs)
