"""Script variables, declared once.

The parser, the plan, `gptpipe --help`, `conf/config.yaml` and `docs/script-reference.md` are
all generated from VARIABLES. To add a variable, add one `Variable(...)` here and run
`python -m gptpipe.config.generate` to refresh the generated files.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

from gptpipe.config.dims import CODECS
from gptpipe.errors import ConfigError

TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


@dataclass(frozen=True)
class Variable:
    """One script variable: its type, default, unit and one-line description."""

    name: str
    type: type
    """int, float, str or bool; compact strings (MODEL_DIMS, ...) are str with a codec."""
    default: Any
    description: str
    unit: str = ""
    aliases: tuple[str, ...] = ()
    minimum: float | None = None
    below: float | None = None
    """Exclusive upper bound, or None."""
    example: str = ""
    """A script line that uses the variable, for the script reference."""

    @property
    def type_name(self) -> str:
        if self.name in CODECS:
            return "dims string"
        return self.type.__name__

    def coerce(self, value: Any) -> Any:
        """Convert a script or command-line value to this variable's type; raise ConfigError if it does not fit."""
        expected = self.type
        if expected is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
                return value.lower() in TRUE_WORDS
            raise ConfigError(f"{self.name} expects a boolean (true, false, yes, no, 1 or 0), got {value!r}")
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
                raise ConfigError(f"{self.name} expects a whole number{self._unit_text()}, got {value!r}")
            result: Any = int(value)
        elif expected is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{self.name} expects a number{self._unit_text()}, got {value!r}")
            result = float(value)
            if not math.isfinite(result):
                raise ConfigError(f"{self.name} expects a finite number{self._unit_text()}, got {value!r}")
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{self.name} expects a quoted string, got {value!r}")
            result = value
            if self.name in CODECS:
                CODECS[self.name].decode(value)
        if self.minimum is not None and result < self.minimum:
            raise ConfigError(f"{self.name} must be >= {self.minimum}, got {value!r}")
        if self.below is not None and result >= self.below:
            raise ConfigError(f"{self.name} must be below {self.below}, got {value!r}")
        return result

    def _unit_text(self) -> str:
        return f" ({self.unit})" if self.unit else ""


VARIABLES: tuple[Variable, ...] = (
    Variable("MODEL_DIMS", str, "e256h1d36w64relu1",
             "Model shape: e state width (multiple of 128), h heads of dimension 128, d depth (even), "
             "w attention window, relu feed-forward multiple.",
             example="MODEL_DIMS = 'e512h2d36w1024'"),
    Variable("TRAIN_CONFIG", str, "b64f64",
             "Batch: b fragments per batch (global over all devices), f tokens per fragment.",
             example="TRAIN_CONFIG = 'b64f256'"),
    Variable("DROP_CONFIG", str, "drop1ch1lr0.01slow1000reg0tail0",
             "Regularisation and schedule: drop tokens kept, ch channels kept, lr learning rate, "
             "slow warm-up iterations, reg weight decay, tail decay divisor.",
             example="DROP_CONFIG = 'drop0.9ch1lr0.01slow500tail5'"),
    Variable("DEVICE_COUNT", int, 1, "Devices to train on with data parallelism (CPU processes when there is no GPU).",
             unit="devices", minimum=1, example="DEVICE_COUNT = 4"),
    Variable("MAX_ITERS", int, 2000, "Iterations that train() runs to.", unit="iterations", minimum=0,
             example="MAX_ITERS = 5000"),
    Variable("MAX_SECONDS", float, 0.0,
             "Wall-clock budget for training, evaluations included: train() stops at MAX_ITERS or when the "
             "budget is spent, whichever comes first, and the learning-rate tail follows whichever is further "
             "along (0: no budget).", unit="seconds", minimum=0.0, example="MAX_SECONDS = 70"),
    Variable("EVAL_INTERVAL", int, 100, "Evaluate (and save, with SAVE_MODEL) every this many iterations.",
             unit="iterations", minimum=1, example="EVAL_INTERVAL = 200"),
    Variable("EVAL_ITERS", int, 20, "Batches in each evaluation, drawn once from train and from test data.",
             unit="batches", aliases=("EVAL_BATCH_COUNT",), minimum=1, example="EVAL_ITERS = 50"),
    Variable("SAVE_MODEL", bool, True, "Save a checkpoint every EVAL_INTERVAL iterations and at the end of train().",
             example="SAVE_MODEL = false"),
    Variable("PRINT_ITER_TRAIN_ERR", bool, False, "Log the training loss of every iteration.",
             example="PRINT_ITER_TRAIN_ERR = true"),
    Variable("TEST_FRACTION", float, 0.05,
             "Share of the data held out for testing: whole documents where the data has documents, "
             "else the tail of the text.", unit="fraction", minimum=0.0, below=1.0, example="TEST_FRACTION = 0.1"),
    Variable("CHECKPOINT_DIR", str, "",
             "Folder for checkpoints; empty means checkpoints/ in the run directory.",
             example="CHECKPOINT_DIR = '${data_dir}/run1/checkpoints'"),
    Variable("KEEP_MODEL_COUNT", int, 0, "Keep only the newest N checkpoints (0: keep all).", unit="checkpoints",
             minimum=0, example="KEEP_MODEL_COUNT = 3"),
    Variable("EXACT_TEST_BATCHES", int, 1000, "Random test batches that compute_exact_test() averages.",
             unit="batches", minimum=1, example="EXACT_TEST_BATCHES = 200"),
)

BY_NAME: dict[str, Variable] = {}
for _variable in VARIABLES:
    BY_NAME[_variable.name] = _variable
    for _alias in _variable.aliases:
        BY_NAME[_alias] = _variable

UNSUPPORTED: dict[str, str] = {
    "USE_PPM": "gptpipe has no PPM (prediction by partial matching) side model; train the transformer alone",
    "USE_LMATCH": "gptpipe has no long-match index side model; train the transformer alone",
    "set_lmatch_index_folder": "gptpipe has no long-match index side model",
    "connect_data_server": "gptpipe reads data from local files only; copy or mount the data and use "
                           "load_indexed_docset_folder() or load_tokenized_train()",
    "connect_http_data_server": "gptpipe reads data from local files only; copy or mount the data and use "
                                "load_indexed_docset_folder() or load_tokenized_train()",
}
"""Names from the reference C++ trainer that gptpipe does not provide, with the reason."""


def lookup(name: str) -> Variable:
    """Return the variable `name` (or its alias); raise ConfigError with the closest name."""
    if name in BY_NAME:
        return BY_NAME[name]
    if name in UNSUPPORTED:
        raise ConfigError(f"variable {name} is not supported: {UNSUPPORTED[name]}")
    raise ConfigError(f"unknown variable {name}" + suggest(name, BY_NAME))


def closest(name: str, known: Any, cutoff: float = 0.6) -> str | None:
    """Return the name of `known` closest to `name` (or to its upper case), or None when none is close."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=cutoff)
    if not close:
        close = difflib.get_close_matches(name.upper(), names, n=1, cutoff=cutoff)
    return close[0] if close else None


def suggest(name: str, known: Any) -> str:
    """Return '; did you mean X?' for the closest of `known`, or a list of them."""
    close = closest(name, known)
    if close:
        return f"; did you mean {close}?"
    return "; known names are " + ", ".join(sorted(known))


def defaults() -> dict[str, Any]:
    return {v.name: v.default for v in VARIABLES}


