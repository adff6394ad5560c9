"""Indexed folders: a corpus tokenized once into a memory-mapped token file.

`index_docset_folder` and `index_tokenized_folder` write three files into the data folder:
  gptpipe-tokens.bin  every token, little-endian uint16 (vocabulary up to 65536) or uint32
  gptpipe-docs.npy    int64 start of each document (docsets) or of each source file (token files)
  gptpipe-index.json  format, token dtype and count, tokenizer, and the source files it was built from
The JSON file is written last, so an interrupted indexing leaves no index that looks complete.
`open_index` memory-maps the token file, so a corpus larger than RAM trains.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from gptpipe.data.files import iter_docset, list_files, raw_token_layout, read_token_chunks, require_dir
from gptpipe.data.tokenizer import Tokenizer, same_tokenizer, tokenizer_from_metadata
from gptpipe.errors import DataError

log = logging.getLogger("gptpipe.data")

INDEX_JSON = "gptpipe-index.json"
INDEX_TOKENS = "gptpipe-tokens.bin"
INDEX_DOCS = "gptpipe-docs.npy"
INDEX_LOCK = ".gptpipe-index.lock"
INDEX_FILES = (INDEX_JSON, INDEX_TOKENS, INDEX_DOCS, INDEX_LOCK)
INDEX_FORMAT = 1
ENCODE_BATCH_DOCUMENTS = 1024


@dataclass
class OpenIndex:
    """A loaded index: memory-mapped tokens and what the JSON file records."""

    folder: Path
    tokens: np.ndarray
    doc_starts: np.ndarray
    info: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.info["kind"]


def token_dtype(vocab_size: int) -> str:
    return "<u2" if vocab_size <= 1 << 16 else "<u4"


def index_docset_folder(folder: str | Path, tokenizer: Tokenizer, marker_token: int, vocab_size: int) -> Path:
    """Tokenize every document pack in `folder`, each document preceded by `marker_token`.

    Several rank processes may run this at once on the same folder: the first to take the
    folder's lock builds the index, and the others then find it up to date.
    """
    with _index_lock(require_dir(folder)):
        return _index_docset_folder(folder, tokenizer, marker_token, vocab_size)


def _index_docset_folder(folder: str | Path, tokenizer: Tokenizer, marker_token: int, vocab_size: int) -> Path:
    folder = require_dir(folder)
    sources = _source_files(folder)
    info = {
        "format": INDEX_FORMAT, "kind": "docset", "dtype": token_dtype(vocab_size),
        "tokenizer": tokenizer.to_metadata(), "marker_token": marker_token,
        "files": [_file_record(folder, path) for path in sources],
    }
    if _up_to_date(folder, info):
        log.info("index_docset_folder: the index in %s is up to date, not rebuilding it", folder)
        return folder / INDEX_JSON

    (folder / INDEX_JSON).unlink(missing_ok=True)
    log.info("index_docset_folder: tokenizing %d document packs in %s with the %s tokenizer",
             len(sources), folder, tokenizer.name)
    doc_starts: list[np.ndarray] = []
    position = 0
    max_token = 0
    with open(folder / INDEX_TOKENS, "wb") as out:
        for path, record in zip(sources, info["files"]):
            record["first_token"] = position
            for batch in _document_batches(path):
                encoded = tokenizer.encode_batch(batch)
                lengths = np.array([len(tokens) + 1 for tokens in encoded], dtype=np.int64)
                doc_starts.append(position + np.concatenate(([0], np.cumsum(lengths)[:-1])))
                marker = np.array([marker_token], dtype=np.uint32)
                tokens = np.concatenate([part for tokens in encoded for part in (marker, tokens)])
                max_token = max(max_token, int(tokens.max()))
                out.write(tokens.astype(info["dtype"]))
                position += len(tokens)
    if position == 0:
        raise DataError(f"the document packs in {folder} contain no documents; the dataset is empty")
    return _finish(folder, info, position, doc_starts, max_token)


def index_tokenized_folder(folder: str | Path, token_width: int, header_size: int) -> Path:
    """Copy the raw token files of `folder` into one uint16 (width 2) or uint32 token file.

    Safe to run from several rank processes at once, as index_docset_folder is.
    """
    with _index_lock(require_dir(folder)):
        return _index_tokenized_folder(folder, token_width, header_size)


def _index_tokenized_folder(folder: str | Path, token_width: int, header_size: int) -> Path:
    folder = require_dir(folder)
    if token_width not in (2, 3, 4):
        raise DataError(f"token_width must be 2, 3 or 4 bytes, got {token_width}")
    if header_size < 0:
        raise DataError(f"header_size must be 0 or more bytes, got {header_size}")
    sources = _source_files(folder)
    info = {
        "format": INDEX_FORMAT, "kind": "tokens", "dtype": "<u2" if token_width == 2 else "<u4",
        "token_width": token_width, "header_size": header_size,
        "files": [_file_record(folder, path) for path in sources],
    }
    if _up_to_date(folder, info):
        log.info("index_tokenized_folder: the index in %s is up to date, not rebuilding it", folder)
        return folder / INDEX_JSON

    (folder / INDEX_JSON).unlink(missing_ok=True)
    log.info("index_tokenized_folder: copying %d token files in %s (%d bytes per token, %d header bytes)",
             len(sources), folder, token_width, header_size)
    layouts = [raw_token_layout(path, token_width, header_size) for path in sources]
    doc_starts: list[np.ndarray] = []
    position = 0
    max_token = 0
    with open(folder / INDEX_TOKENS, "wb") as out:
        for layout, record in zip(layouts, info["files"]):
            record["first_token"] = position
            doc_starts.append(np.array([position], dtype=np.int64))
            for chunk in read_token_chunks(layout):
                if len(chunk):
                    max_token = max(max_token, int(chunk.max()))
                out.write(chunk.astype(info["dtype"]))
                position += len(chunk)
    if position == 0:
        raise DataError(f"the token files in {folder} contain no tokens; the dataset is empty")
    return _finish(folder, info, position, doc_starts, max_token)


def open_index(folder: str | Path) -> OpenIndex:
    """Memory-map the index of `folder`; raise DataError when it is missing or damaged."""
    folder = require_dir(folder)
    json_path = folder / INDEX_JSON
    if not json_path.is_file():
        raise DataError(
            f"no gptpipe index in {folder} ({INDEX_JSON} not found); run index_docset_folder('{folder}') "
            "or index_tokenized_folder(...) before loading it"
        )
    info = json.loads(json_path.read_text(encoding="utf-8"))
    if info.get("format") != INDEX_FORMAT:
        raise DataError(f"{json_path} has index format {info.get('format')}, expected {INDEX_FORMAT}; index again")
    tokens_path = folder / INDEX_TOKENS
    expected = info["token_count"] * np.dtype(info["dtype"]).itemsize
    actual = tokens_path.stat().st_size if tokens_path.is_file() else 0
    if actual != expected:
        raise DataError(
            f"{tokens_path} has {actual} bytes but the index records {expected}; the index is damaged, "
            "delete gptpipe-index.json and index the folder again"
        )
    if _changed_sources(folder, info):
        log.warning("the files in %s changed after they were indexed; index the folder again to train on "
                    "the current files", folder)
    tokens = np.memmap(tokens_path, dtype=info["dtype"], mode="r", shape=(info["token_count"],))
    doc_starts = np.load(folder / INDEX_DOCS)
    return OpenIndex(folder, tokens, doc_starts, info)


def index_tokenizer(index: OpenIndex, current: Tokenizer | None) -> Tokenizer:
    """Return the tokenizer of a docset index; raise DataError if the script set a different one."""
    stored = tokenizer_from_metadata(index.info["tokenizer"])
    if current is not None and not same_tokenizer(stored, current):
        raise DataError(
            f"the index in {index.folder} was built with the {stored.name} tokenizer, but the script set "
            f"the {current.name} tokenizer; use the same tokenizer or index the folder again"
        )
    return stored


def find_out_of_range(index: OpenIndex, vocab_size: int) -> None:
    """Raise DataError naming the source file and byte offset of the first token >= vocab_size."""
    if index.info["max_token"] < vocab_size:
        return
    layout = raw_token_layout(index.folder / INDEX_TOKENS, np.dtype(index.info["dtype"]).itemsize, 0)
    position = 0
    for chunk in read_token_chunks(layout):
        bad = np.flatnonzero(chunk >= vocab_size)
        if len(bad):
            position += int(bad[0])
            break
        position += len(chunk)
    record = [r for r in index.info["files"] if r["first_token"] <= position][-1]
    width = index.info.get("token_width", np.dtype(index.info["dtype"]).itemsize)
    byte_offset = index.info.get("header_size", 0) + (position - record["first_token"]) * width
    raise DataError(
        f"token id {int(index.tokens[position])} in {index.folder / record['name']} at byte offset "
        f"{byte_offset} is at or above the vocabulary size {vocab_size}; raise N in set_vocab_size(N, K) "
        "or check token_width"
    )


def _source_files(folder: Path) -> list[Path]:
    sources = list_files(folder, skip_names=INDEX_FILES + (INDEX_JSON + ".tmp",))
    if not sources:
        raise DataError(f"{folder} contains no files to index; the dataset is empty")
    return sources


def _document_batches(path: Path) -> Iterator[list[str]]:
    batch: list[str] = []
    for record in iter_docset(path):
        batch.append(record.decode("utf-8", errors="replace"))
        if len(batch) == ENCODE_BATCH_DOCUMENTS:
            yield batch
            batch = []
    if batch:
        yield batch


def _file_record(folder: Path, path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"name": str(path.relative_to(folder)), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _comparable(info: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in info.items() if k not in ("token_count", "doc_count", "max_token", "files")}
    keep["files"] = [{k: r[k] for k in ("name", "size", "mtime_ns")} for r in info.get("files", [])]
    return keep


def _up_to_date(folder: Path, info: dict[str, Any]) -> bool:
    json_path = folder / INDEX_JSON
    if not json_path.is_file():
        return False
    try:
        existing = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return _comparable(existing) == _comparable(info)


def _changed_sources(folder: Path, info: dict[str, Any]) -> bool:
    for record in info["files"]:
        path = folder / record["name"]
        if not path.is_file():
            return True
        stat = path.stat()
        if stat.st_size != record["size"] or stat.st_mtime_ns != record["mtime_ns"]:
            return True
    return False


@contextmanager
def _index_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder`'s index while building it (fcntl.flock on a lock file)."""
    import fcntl

    with open(folder / INDEX_LOCK, "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def _finish(folder: Path, info: dict[str, Any], token_count: int, doc_starts: list[np.ndarray],
            max_token: int) -> Path:
    starts = np.concatenate(doc_starts).astype(np.int64)
    np.save(folder / INDEX_DOCS, starts)
    info.update(token_count=token_count, doc_count=len(starts), max_token=max_token)
    json_path = folder / INDEX_JSON
    temporary = folder / (INDEX_JSON + ".tmp")
    temporary.write_text(json.dumps(info, indent=1), encoding="utf-8")
    os.replace(temporary, json_path)
    log.info("indexed %s: %d tokens, %d documents", folder, token_count, len(starts))
    return json_path
