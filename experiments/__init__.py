"""tfrnn experiments on one harness (`experiments/harness.py`): `python -m experiments.NAME [--quick]`.

Results in experiments/results; the log of what was measured in experiments/README.md.
"""
