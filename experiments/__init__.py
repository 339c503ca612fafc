"""tfrnn experiments: `python -m experiments.NAME`, results in experiments/results."""
