"""Trains a few steps with MirroredStrategy over two logical CPU devices.

Run by tests/test_distributed.py in a subprocess: logical devices must be set
before TensorFlow starts. Usage: mirrored_run.py MODEL_DIR REPLICAS
"""

import sys

import tensorflow as tf

from tfrnn.tasks.classify import config as config_lib
from tfrnn.training import loop

model_dir, replicas = sys.argv[1], int(sys.argv[2])
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
devices = [f"/cpu:{i}" for i in range(replicas)]
strategy = tf.distribute.MirroredStrategy(devices) if replicas > 1 else None
config = config_lib.Config(
    mode="dynamic",
    units=16,
    train_examples=512,
    test_examples=128,
    batch_size=64,
    max_epochs=1,
    model_dir=model_dir,
    strategy="mirrored" if replicas > 1 else "default",
)
report = loop.train(config, strategy=strategy, log=lambda line: None)
assert report["replicas"] == replicas, report["replicas"]
