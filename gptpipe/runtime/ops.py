"""Imports every module that registers script operations, so the registry is complete."""

# Each import registers that module's operations through @operation.
import importlib

_OPERATION_MODULES = (
    "gptpipe.data.ops",
    "gptpipe.runtime.model_ops",
    "gptpipe.runtime.train",
    "gptpipe.runtime.checkpoint_ops",
    "gptpipe.runtime.eval_ops",
    "gptpipe.distributed.net_train",
)

for _module in _OPERATION_MODULES:
    importlib.import_module(_module)
