"""Checkpoint and model files: tensors in safetensors, everything else in JSON metadata.

A checkpoint is `<dir>/iter_<N>.safetensors`. The safetensors body stores the model's state_dict
under its own names, the optimizer's tensors under `optim/...`, the scheduler's under `sched/...`
and the torch RNG states under `rng/...`. Everything else (param_groups, scalar optimizer state,
the Python and numpy RNG states, the iteration and the caller's metadata such as MODEL_DIMS,
flags and tokenizer ids) is one JSON string under the safetensors metadata key "gptpipe".
Nothing is pickled or unpickled, so reading a file from a stranger cannot run code.

Files are written to a temporary name in the same folder, fsynced and renamed into place, so a
crash leaves either the old set of checkpoints or the new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open

from gptpipe.errors import CheckpointError

log = logging.getLogger("gptpipe.checkpoint")

METADATA_KEY = "gptpipe"
"""The safetensors metadata key whose value is gptpipe's JSON document."""
FORMAT_NAME = "gptpipe-checkpoint"
FORMAT_VERSION = 1
VOCAB_SIZE_KEY = "vocab_size"
"""Key of the tokenizer's vocabulary size in the caller's metadata, read by check_vocabulary()."""
SPECIAL_IDS_KEY = "special_token_ids"
"""Key of the special-token ids ({name: id}) in the caller's metadata, read by check_vocabulary()."""

OPTIMIZER_PREFIX = "optim"
SCHEDULER_PREFIX = "sched"
RNG_PREFIX = "rng"
_RESERVED_PREFIXES = (OPTIMIZER_PREFIX + "/", SCHEDULER_PREFIX + "/", RNG_PREFIX + "/")

_CHECKPOINT_NAME = re.compile(r"^iter_(\d+)\.safetensors$")
_TEMP_NAME = re.compile(r"^\.iter_(\d+)\.safetensors\.tmp-(\d+)$")

# safetensors rejects headers above 100 MB; a larger length means the file is something else.
_MAX_HEADER_BYTES = 100_000_000
# Pickle protocols 2 to 5 (torch.save before version 1.6) start with opcode 0x80 and the
# protocol number, and torch.save since 1.6 writes a zip archive.
_PICKLE_PROTOCOL_BYTE = 0x80
_ZIP_MAGIC = b"PK\x03\x04"

# Tags of the JSON encoding of optimizer, scheduler and RNG states (see _encode_value).
_TENSOR_TAG = "__tensor__"
_TUPLE_TAG = "__tuple__"
_ITEMS_TAG = "__items__"
_NDARRAY_TAG = "__ndarray__"
_TAGS = (_TENSOR_TAG, _TUPLE_TAG, _ITEMS_TAG, _NDARRAY_TAG)


@dataclass
class Checkpoint:
    """The contents of one checkpoint or model file."""

    path: Path
    iteration: int
    model_state: dict[str, torch.Tensor]
    """The model's state_dict; tied weights come back as one tensor under each name."""
    optimizer_state: dict[str, Any] | None
    """The optimizer's state_dict, ready for optimizer.load_state_dict(); None when not saved or not read."""
    scheduler_state: dict[str, Any] | None
    """The learning-rate scheduler's state_dict, ready for scheduler.load_state_dict(); None when not saved."""
    metadata: dict[str, Any]
    """The `extra_metadata` given to the writer (MODEL_DIMS, flags, tokenizer, config, ...)."""
    rng_state: dict[str, Any] | None
    """Python, numpy, torch (and CUDA) random states at save time; None when not saved."""

    def restore_rng(self) -> None:
        """Set the Python, numpy, torch and CUDA random generators to the saved states.

        Raises CheckpointError when the file contains no random states.
        """
        if self.rng_state is None:
            raise CheckpointError(
                f"checkpoint {self.path} contains no random-generator states because "
                "it was saved with rng=False; resume without restoring them"
            )
        random.setstate(self.rng_state["python"])
        np.random.set_state(self.rng_state["numpy"])
        torch.set_rng_state(self.rng_state["torch"])

        cuda_states = self.rng_state.get("cuda") or []
        if not cuda_states:
            return
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            available = torch.cuda.device_count() if torch.cuda.is_available() else 0
            log.warning(
                "%s contains CUDA random states for %d devices but %d are available; "
                "CUDA random streams start fresh",
                self.path, len(cuda_states), available,
            )


# ---------------------------------------------------------------- paths and listing


def checkpoint_path(directory: str | os.PathLike, iteration: int) -> Path:
    """Return the path of the checkpoint for `iteration` in `directory`."""
    return Path(directory) / f"iter_{int(iteration)}.safetensors"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """Return the (iteration, path) of every finished checkpoint in `directory`, oldest first.

    Temporary files of an unfinished write are not listed. A missing folder gives an empty list.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        match = _CHECKPOINT_NAME.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _describe_folder(directory: Path) -> str:
    if not directory.exists():
        return f"folder {directory} does not exist"
    saved = list_checkpoints(directory)
    if not saved:
        return f"{directory} contains no checkpoints (iter_<N>.safetensors)"
    iterations = ", ".join(str(iteration) for iteration, _ in saved)
    return f"{directory} contains checkpoints for iterations {iterations}"


# ---------------------------------------------------------------- writing


def save_checkpoint(
    directory: str | os.PathLike,
    iteration: int,
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    extra_metadata: Mapping[str, Any] | None = None,
    scheduler: Any = None,
    rng: bool = True,
    keep_count: int = 0,
) -> Path:
    """Write `<directory>/iter_<iteration>.safetensors` atomically and return its path.

    Temporary files left by a killed writer are removed first. After the write, all but the
    newest `keep_count` checkpoints are deleted (0 keeps all). See write_checkpoint_file()
    for the other arguments.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temp_files(directory)

    path = write_checkpoint_file(
        checkpoint_path(directory, iteration),
        iteration,
        model,
        optimizer,
        extra_metadata=extra_metadata,
        scheduler=scheduler,
        rng=rng,
    )

    if keep_count > 0:
        _delete_old_checkpoints(directory, keep_count)
    return path


def write_checkpoint_file(
    path: str | os.PathLike,
    iteration: int,
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None = None,
    *,
    extra_metadata: Mapping[str, Any] | None = None,
    scheduler: Any = None,
    rng: bool = True,
) -> Path:
    """Write one checkpoint or model file at `path` atomically and return the path.

    `model` is a module or a state_dict. `optimizer` and `scheduler` (anything with
    state_dict()) are stored for resuming when given. `extra_metadata` must be JSON-serializable.
    `rng` stores the Python, numpy, torch and CUDA random states.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    packer = _TensorPacker()

    model_state = model.state_dict() if isinstance(model, torch.nn.Module) else dict(model)
    for name, tensor in model_state.items():
        if name.startswith(_RESERVED_PREFIXES):
            raise ValueError(f"model tensor name {name!r} uses a prefix reserved for optimizer and RNG state")
        packer.add(name, tensor)

    document: dict[str, Any] = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "iteration": int(iteration),
        "model_tensors": list(model_state),
        "optimizer": None,
        "scheduler": None,
        "rng": None,
        "metadata": _check_json(dict(extra_metadata or {})),
    }
    if optimizer is not None:
        document["optimizer"] = _encode_value(optimizer.state_dict(), OPTIMIZER_PREFIX, packer)
    if scheduler is not None:
        document["scheduler"] = _encode_value(scheduler.state_dict(), SCHEDULER_PREFIX, packer)
    if rng:
        document["rng"] = _encode_value(_capture_rng_state(), RNG_PREFIX, packer)
    document["aliases"] = packer.aliases
    document["digests"] = {name: _tensor_digest(tensor) for name, tensor in packer.tensors.items()}

    metadata = {"format": "pt", METADATA_KEY: json.dumps(document)}
    _write_atomically(path, packer.tensors, metadata)
    log.info("saved checkpoint %s (iteration %d)", path, iteration)
    return path


def _write_atomically(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    temp_path = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        safetensors.torch.save_file(tensors, str(temp_path), metadata=metadata)
        with open(temp_path, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temp_path, path)
        _fsync_folder(path.parent)
    except BaseException as error:
        temp_path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise CheckpointError(
                f"could not write {path}: {error}; check free disk space and write permission "
                f"for {path.parent}"
            ) from error
        raise


def _fsync_folder(directory: Path) -> None:
    # Makes the rename durable. Windows cannot open a folder, and its rename is already durable.
    if os.name != "posix":
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temp_files(directory: Path) -> None:
    # NOTE: the writer's pid is checked on this host only; a folder shared with a writer on
    # another host could lose that writer's temporary file.
    for entry in directory.iterdir():
        match = _TEMP_NAME.match(entry.name)
        if not match:
            continue
        pid = int(match.group(2))
        if pid != os.getpid() and _process_is_alive(pid):
            continue
        entry.unlink(missing_ok=True)
        log.info("removed %s, left by an unfinished checkpoint write", entry)


def _delete_old_checkpoints(directory: Path, keep_count: int) -> None:
    saved = list_checkpoints(directory)
    for iteration, path in saved[: max(0, len(saved) - keep_count)]:
        path.unlink(missing_ok=True)
        log.info("deleted checkpoint %s (iteration %d): keeping the newest %d", path, iteration, keep_count)


def _check_json(value: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"extra_metadata must be JSON-serializable: {error}") from error
    return value


class _TensorPacker:
    """Collects the tensors of one file, storing each shared tensor once.

    safetensors rejects tensors that share memory. A tensor that is the same view as an earlier
    one (tied weights) becomes an alias of it, and one that overlaps another is copied.
    """

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.aliases: dict[str, str] = {}
        self._names_by_view: dict[tuple, str] = {}
        self._used_storages: set[tuple] = set()

    def add(self, name: str, tensor: torch.Tensor) -> str:
        """Store `tensor` under `name` and return the name under which its data is stored."""
        tensor = tensor.detach()
        storage_key = None
        if tensor.numel() > 0 and tensor.device.type != "meta":
            storage_key = (tensor.device, tensor.untyped_storage().data_ptr())
            view_key = (*storage_key, tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
            if view_key in self._names_by_view:
                stored_name = self._names_by_view[view_key]
                self.aliases[name] = stored_name
                return stored_name
            self._names_by_view[view_key] = name

        data = tensor.to("cpu").contiguous()
        if storage_key is not None:
            if storage_key in self._used_storages or data.untyped_storage().nbytes() != data.nbytes:
                data = data.clone()
            self._used_storages.add(storage_key)
        self.tensors[name] = data
        return name


def _encode_value(value: Any, path: str, packer: _TensorPacker) -> Any:
    """Encode a state_dict-like value as JSON, moving its tensors into `packer` under `path`.

    Tuples, dicts with non-string keys and numpy arrays get tags, so decoding returns the same
    types: optimizer.load_state_dict() and random.setstate() compare and index them as stored.
    """
    if isinstance(value, torch.Tensor):
        return {_TENSOR_TAG: packer.add(path, value)}
    if isinstance(value, np.ndarray):
        array = {"dtype": value.dtype.str, "shape": list(value.shape), "data": value.ravel().tolist()}
        return {_NDARRAY_TAG: array}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        items = [_encode_value(item, f"{path}/{index}", packer) for index, item in enumerate(value)]
        return {_TUPLE_TAG: items} if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        looks_tagged = len(value) == 1 and next(iter(value)) in _TAGS
        if all(isinstance(key, str) for key in value) and not looks_tagged:
            return {key: _encode_value(item, f"{path}/{key}", packer) for key, item in value.items()}
        items = [
            [_encode_value(key, path, packer), _encode_value(item, f"{path}/{key}", packer)]
            for key, item in value.items()
        ]
        return {_ITEMS_TAG: items}
    raise TypeError(
        f"cannot store {path} in a checkpoint: {type(value).__name__} is not a tensor, number, string or container"
    )


def _decode_value(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode_value(item, tensors) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        tag, content = next(iter(value.items()))
        if tag == _TENSOR_TAG:
            return tensors[content]
        if tag == _TUPLE_TAG:
            return tuple(_decode_value(item, tensors) for item in content)
        if tag == _ITEMS_TAG:
            return {_decode_value(key, tensors): _decode_value(item, tensors) for key, item in content}
        if tag == _NDARRAY_TAG:
            return np.array(content["data"], dtype=np.dtype(content["dtype"])).reshape(content["shape"])
    return {key: _decode_value(item, tensors) for key, item in value.items()}


def _tensor_references(value: Any) -> Iterable[str]:
    if isinstance(value, list):
        for item in value:
            yield from _tensor_references(item)
    elif isinstance(value, dict):
        if len(value) == 1 and _TENSOR_TAG in value:
            yield value[_TENSOR_TAG]
            return
        for item in value.values():
            yield from _tensor_references(item)


def _capture_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _tensor_digest(tensor: torch.Tensor) -> str:
    """Return the SHA-256 of a tensor's dtype, shape and bytes, to detect corrupted data."""
    digest = hashlib.sha256(f"{tensor.dtype}:{tuple(tensor.shape)}:".encode())
    if tensor.numel() > 0:
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


# ---------------------------------------------------------------- reading


def read_checkpoint(path: str | os.PathLike, *, with_optimizer: bool = True) -> Checkpoint:
    """Read a checkpoint or model file written by gptpipe, checking every tensor against its digest.

    `with_optimizer=False` skips the optimizer and scheduler tensors (for inference or
    averaging). Raises CheckpointError for a missing, truncated, corrupt, pickled or foreign file.
    """
    path = Path(path)
    document = _read_document(path)
    aliases: dict[str, str] = document.get("aliases", {})
    digests: dict[str, str] = document.get("digests", {})

    names_to_read: set[str] = {aliases.get(name, name) for name in document["model_tensors"]}
    for section in ("optimizer", "scheduler", "rng"):
        if section == "rng" or with_optimizer:
            names_to_read.update(aliases.get(name, name) for name in _tensor_references(document[section]))
    stored = _load_tensors(path, names_to_read, digests)

    resolved = dict(stored)
    resolved.update({name: stored[target] for name, target in aliases.items() if target in stored})
    model_state = {name: resolved[name] for name in document["model_tensors"]}
    optimizer_state = None
    scheduler_state = None
    if with_optimizer:
        optimizer_state = _decode_value(document["optimizer"], resolved)
        scheduler_state = _decode_value(document["scheduler"], resolved)

    return Checkpoint(
        path=path,
        iteration=int(document["iteration"]),
        model_state=model_state,
        optimizer_state=optimizer_state,
        scheduler_state=scheduler_state,
        metadata=document.get("metadata", {}),
        rng_state=_decode_value(document["rng"], resolved),
    )


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Return the `extra_metadata` of a checkpoint or model file without reading its tensors."""
    return _read_document(Path(path)).get("metadata", {})


def _read_document(path: Path) -> dict[str, Any]:
    header = _read_header(path)
    fields = header.get("__metadata__") or {}
    text = fields.get(METADATA_KEY)
    if text is None:
        raise CheckpointError(
            f"{path} is a safetensors file but was not written by gptpipe (no '{METADATA_KEY}' metadata), "
            "so its model dims and tokenizer are unknown; save the weights with gptpipe "
            "(gptpipe.runtime.checkpoint.write_checkpoint_file with extra_metadata) first"
        )
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(
            f"{path} is corrupt: its '{METADATA_KEY}' metadata is not valid JSON ({error})"
        ) from error
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path} was not written by gptpipe: its '{METADATA_KEY}' metadata has no format '{FORMAT_NAME}'"
        )
    if document.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {document['version']}, but this gptpipe reads up to "
            f"version {FORMAT_VERSION}; upgrade gptpipe to read it"
        )
    return document


def _read_header(path: Path) -> dict[str, Any]:
    """Check that `path` is a complete safetensors file and return its JSON header."""
    if not path.is_file():
        if path.is_dir():
            raise CheckpointError(f"{path} is a folder, not a checkpoint file; {_describe_folder(path)}")
        raise CheckpointError(f"checkpoint file {path} not found; {_describe_folder(path.parent)}")

    size = path.stat().st_size
    with open(path, "rb") as file:
        start = file.read(9)
        _reject_pickle(path, start, size)
        start = start[:8]
        if size < 8:
            raise CheckpointError(
                f"{path} is truncated ({size} bytes) or not a safetensors file; write the checkpoint again"
            )
        (header_bytes,) = struct.unpack("<Q", start)
        if header_bytes > _MAX_HEADER_BYTES:
            raise CheckpointError(f"{path} is not a safetensors file (its first 8 bytes are not a header length)")
        if 8 + header_bytes > size:
            raise CheckpointError(
                f"{path} is truncated: the file has {size} bytes but its header alone needs "
                f"{8 + header_bytes}; use an earlier checkpoint or write it again"
            )
        file.seek(8)
        header_text = file.read(header_bytes)

    try:
        header = json.loads(header_text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file (its header is not a JSON object)")

    data_bytes = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            data_bytes = max(data_bytes, int(entry["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise CheckpointError(f"{path} is corrupt: header entry {name!r} has no valid data_offsets") from None
    expected = 8 + header_bytes + data_bytes
    if size < expected:
        raise CheckpointError(
            f"{path} is truncated: the file has {size} bytes but its header describes {expected}; "
            "use an earlier checkpoint or write it again"
        )
    if size > expected:
        raise CheckpointError(f"{path} is corrupt: {size - expected} bytes follow the last tensor")
    return header


def _reject_pickle(path: Path, start: bytes, size: int) -> None:
    # A safetensors header length can start with byte 0x80 too, so a file that reads as
    # a header length followed by "{" is a safetensors file.
    if len(start) == 9 and start[8:9] == b"{" and 8 + struct.unpack("<Q", start[:8])[0] <= size:
        return
    is_pickle = len(start) >= 2 and start[0] == _PICKLE_PROTOCOL_BYTE and 2 <= start[1] <= 5
    is_zip = start.startswith(_ZIP_MAGIC)
    if not (is_pickle or is_zip):
        return
    kind = "a pickle file" if is_pickle else "a zip archive as written by torch.save"
    raise CheckpointError(
        f"{path} is {kind}. gptpipe does not load pickles, because unpickling a file can run "
        "arbitrary code. To convert a file you trust, load it in your own code "
        "(torch.load(path, weights_only=True)) and save the weights as safetensors with "
        "gptpipe.runtime.checkpoint.write_checkpoint_file(new_path, 0, state_dict, "
        "extra_metadata={...})"
    )


def _load_tensors(path: Path, names: set[str], digests: Mapping[str, str]) -> dict[str, torch.Tensor]:
    tensors = {}
    try:
        with safe_open(str(path), framework="pt") as file:
            available = set(file.keys())
            missing = sorted(names - available)
            if missing:
                raise CheckpointError(
                    f"{path} is corrupt: tensors {_first_few(missing)} are listed in its metadata but missing"
                )
            for name in sorted(names):
                tensors[name] = file.get_tensor(name)
    except SafetensorError as error:
        raise CheckpointError(f"{path} is corrupt: safetensors could not read it ({error})") from error

    for name, tensor in tensors.items():
        expected = digests.get(name)
        if expected is not None and _tensor_digest(tensor) != expected:
            raise CheckpointError(
                f"{path} is corrupt: the data of tensor {name!r} does not match its checksum; "
                "use an earlier checkpoint"
            )
    return tensors


def _first_few(names: list[str], count: int = 5) -> str:
    listing = ", ".join(repr(name) for name in names[:count])
    if len(names) > count:
        listing += f" and {len(names) - count} more"
    return listing


# ---------------------------------------------------------------- using what was read


def load_model_state(
    model: torch.nn.Module, model_state: Mapping[str, torch.Tensor], source: str | os.PathLike
) -> None:
    """Copy `model_state` into `model` after checking that tensor names and shapes match.

    Raises CheckpointError naming `source` and the first differences when they do not.
    """
    differences = _state_differences(
        {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()},
        {name: tuple(tensor.shape) for name, tensor in model_state.items()},
        expected_label="the model",
        found_label="the file",
    )
    if differences:
        raise CheckpointError(
            f"{source} does not fit the model: {differences}; check that MODEL_DIMS and the MPF_* "
            "flags match the ones the file was saved with"
        )
    model.load_state_dict(model_state, strict=True)


def _state_differences(
    expected: Mapping[str, tuple], found: Mapping[str, tuple], *, expected_label: str, found_label: str
) -> str:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{name!r} is {list(found[name])} in {found_label} but {list(expected[name])} in {expected_label}"
        for name in sorted(set(expected) & set(found))
        if expected[name] != found[name]
    ]
    parts = []
    if missing:
        parts.append(
            f"{len(missing)} tensors of {expected_label} are missing from {found_label} ({_first_few(missing)})"
        )
    if unexpected:
        parts.append(
            f"{len(unexpected)} tensors of {found_label} are not in {expected_label} ({_first_few(unexpected)})"
        )
    if shapes:
        parts.append(f"{len(shapes)} shapes differ ({'; '.join(shapes[:5])})")
    return "; ".join(parts)


def average_checkpoints(
    directory: str | os.PathLike, last_iteration: int, span: int
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Average the model weights of every checkpoint with iteration in [last_iteration - span, last_iteration].

    Floating-point tensors are summed in float32 and cast back to their dtype. Other tensors
    (integer buffers) are taken from the newest checkpoint. Returns the averaged state and the
    iterations used, oldest first.
    """
    directory = Path(directory)
    selected = [
        (iteration, path)
        for iteration, path in list_checkpoints(directory)
        if last_iteration - span <= iteration <= last_iteration
    ]
    if not selected:
        raise CheckpointError(
            f"no checkpoints to average for iterations {last_iteration - span} to {last_iteration}; "
            f"{_describe_folder(directory)}"
        )

    sums: dict[str, torch.Tensor] = {}
    newest: dict[str, torch.Tensor] = {}
    first_shapes: dict[str, tuple] = {}
    for iteration, path in selected:
        state = read_checkpoint(path, with_optimizer=False).model_state
        shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
        if not first_shapes:
            first_shapes = shapes
        differences = _state_differences(
            first_shapes,
            shapes,
            expected_label=f"iteration {selected[0][0]}",
            found_label=f"iteration {iteration}",
        )
        if differences:
            raise CheckpointError(f"cannot average {path} with the checkpoints before it: {differences}")
        for name, tensor in state.items():
            newest[name] = tensor
            if tensor.is_floating_point():
                accumulated = tensor.to(torch.float32)
                sums[name] = accumulated if name not in sums else sums[name] + accumulated
        log.info("averaging %s", path)

    averaged = {}
    for name, tensor in newest.items():
        if name in sums:
            averaged[name] = (sums[name] / len(selected)).to(tensor.dtype)
        else:
            averaged[name] = tensor
    return averaged, [iteration for iteration, _ in selected]


def check_vocabulary(metadata: Mapping[str, Any], vocab_size: int, special_ids: Mapping[str, int]) -> None:
    """Raise CheckpointError unless the file's vocabulary size and special-token ids match the data's.

    `metadata` is Checkpoint.metadata. Its "vocab_size" and "special_token_ids" entries are
    compared. Special tokens that only one side defines count as a difference.
    """
    saved_size = metadata.get(VOCAB_SIZE_KEY)
    saved_ids = dict(metadata.get(SPECIAL_IDS_KEY) or {})
    if saved_size is None:
        # NOTE: files without tokenizer metadata are accepted unchecked.
        log.warning("the model file records no vocabulary size, so it cannot be checked against the data")
        return
    if saved_size == vocab_size and saved_ids == dict(special_ids):
        return
    raise CheckpointError(
        "vocabulary mismatch between model and data: the model was trained with vocabulary size "
        f"{saved_size} and special tokens {_format_ids(saved_ids)}, the data has vocabulary size "
        f"{vocab_size} and special tokens {_format_ids(special_ids)}; load the tokenizer the model "
        "was trained with, or train a new model on this data"
    )


def _format_ids(ids: Mapping[str, int]) -> str:
    if not ids:
        return "(none)"
    return "{" + ", ".join(f"{name}={ids[name]}" for name in sorted(ids)) + "}"
