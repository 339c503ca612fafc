"""Compatibility layers: `tfrnn.compat.v1` runs TF1's RNN programs unchanged
but for their RNN names (`from tfrnn.compat.v1 import nn`)."""

from tfrnn.compat import v1

__all__ = ["v1"]
