"""Multi-device and multi-host training: the rank launcher, net_train() and the worker agent."""

from gptpipe.distributed.launch import maybe_launch

__all__ = ["maybe_launch"]
