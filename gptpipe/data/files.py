"""Reading data files: text, folders of text, document packs and token-id files.

Document pack format: repeated records of a 4-byte little-endian unsigned length followed by
that many bytes of UTF-8 text.

Token-id files: little-endian uint16 token ids, or an llm.c token file, recognised by its header
of 256 little-endian int32 values whose first value is 20240520 and whose third value is the
token count, followed by the uint16 tokens.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from gptpipe.errors import DataError

log = logging.getLogger("gptpipe.data")

LLMC_MAGIC = 20240520
LLMC_HEADER_BYTES = 256 * 4
BINARY_PROBE_BYTES = 8192
"""A file is binary when its first this many bytes contain a NUL byte (the rule git uses)."""
SCAN_CHUNK_TOKENS = 1 << 22


def require_file(path: str | Path, kind: str = "data file") -> Path:
    """Return `path` if it is a file; raise DataError saying whether its folder exists."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise DataError(f"{kind} {path} is a folder, expected a file")
    raise DataError(f"{kind} not found: {path} ({_parent_status(path)})")


def require_dir(path: str | Path, kind: str = "data folder") -> Path:
    """Return `path` if it is a folder; raise DataError saying whether its parent exists."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise DataError(f"{kind} {path} is a file, expected a folder")
    raise DataError(f"{kind} not found: {path} ({_parent_status(path)})")


def _parent_status(path: Path) -> str:
    parent = path.parent
    if parent.is_dir():
        return f"the folder {parent} exists; check the name"
    return f"its parent folder {parent} does not exist either"


def decode_utf8(data: bytes, origin: str) -> tuple[str, int]:
    """Decode UTF-8, replacing invalid bytes with U+FFFD; return the text and the replacement count."""
    text = data.decode("utf-8", errors="replace")
    replaced = text.count("\ufffd") - data.count("\ufffd".encode("utf-8"))
    if replaced:
        log.warning("%s: replaced %d invalid UTF-8 sequences with U+FFFD", origin, replaced)
    return text, replaced


def read_text_file(path: str | Path) -> str:
    path = require_file(path)
    text, _ = decode_utf8(path.read_bytes(), str(path))
    return text


def is_binary(data: bytes) -> bool:
    return b"\x00" in data[:BINARY_PROBE_BYTES]


def list_files(folder: Path, skip_names: tuple[str, ...] = ()) -> list[Path]:
    """Return every file below `folder`, in sorted path order, skipping hidden entries."""
    files: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and name not in skip_names:
                files.append(Path(root) / name)
    return sorted(files)


def read_text_folder(folder: str | Path) -> tuple[list[str], list[Path]]:
    """Read every text file below `folder` as one document; skip and count binary files."""
    folder = require_dir(folder)
    documents: list[str] = []
    paths: list[Path] = []
    binary_count = 0
    for path in list_files(folder):
        data = path.read_bytes()
        if is_binary(data):
            binary_count += 1
            log.debug("skipping binary file %s", path)
            continue
        text, _ = decode_utf8(data, str(path))
        documents.append(text)
        paths.append(path)
    if binary_count:
        log.info("%s: skipped %d binary files (a NUL byte in the first %d bytes)", folder, binary_count,
                 BINARY_PROBE_BYTES)
    return documents, paths


def iter_docset(path: str | Path) -> Iterator[bytes]:
    """Yield the documents of a document pack as bytes; raise DataError at a truncated record."""
    path = require_file(path, "document pack")
    data = memoryview(path.read_bytes())
    offset = 0
    size = len(data)
    while offset < size:
        if offset + 4 > size:
            raise DataError(
                f"document pack {path} is truncated: the record at byte offset {offset} has "
                f"{size - offset} of the 4 length bytes; the file ends early (rewrite or re-copy it)"
            )
        length = int.from_bytes(data[offset:offset + 4], "little")
        start = offset + 4
        if start + length > size:
            raise DataError(
                f"document pack {path} is truncated: the record at byte offset {offset} declares "
                f"{length} bytes but only {size - start} remain; the file ends early (rewrite or re-copy it)"
            )
        yield bytes(data[start:start + length])
        offset = start + length


def read_docset(path: str | Path) -> list[str]:
    documents = []
    replaced = 0
    for record in iter_docset(path):
        text = record.decode("utf-8", errors="replace")
        replaced += text.count("\ufffd") - record.count("\ufffd".encode("utf-8"))
        documents.append(text)
    if replaced:
        log.warning("%s: replaced %d invalid UTF-8 sequences with U+FFFD", path, replaced)
    return documents


def write_docset(path: str | Path, documents: list[str]) -> None:
    """Write `documents` as a document pack (used by tests and benchmarks)."""
    with open(path, "wb") as out:
        for document in documents:
            data = document.encode("utf-8")
            out.write(len(data).to_bytes(4, "little"))
            out.write(data)


@dataclass(frozen=True)
class TokenFileLayout:
    """Position, count and width of the tokens in a token-id file."""

    path: Path
    offset: int
    """Bytes before the first token (1024 for an llm.c header, else 0)."""
    count: int
    width: int
    """Bytes per token."""
    dtype: str
    """numpy dtype of one token, little-endian."""
    llmc: bool = False


def inspect_token_file(path: str | Path) -> TokenFileLayout:
    """Recognise a uint16 token file or an llm.c token file and check its length."""
    path = require_file(path, "token file")
    size = path.stat().st_size
    with open(path, "rb") as file:
        head = file.read(LLMC_HEADER_BYTES)
    if len(head) == LLMC_HEADER_BYTES:
        header = np.frombuffer(head, dtype="<i4")
        if int(header[0]) == LLMC_MAGIC:
            count = int(header[2])
            body = size - LLMC_HEADER_BYTES
            if body != count * 2:
                raise DataError(
                    f"llm.c token file {path} declares {count} tokens ({count * 2} bytes) in its header "
                    f"but holds {body} bytes after the header; the file is truncated or not an llm.c file"
                )
            return TokenFileLayout(path, LLMC_HEADER_BYTES, count, 2, "<u2", llmc=True)
    return raw_token_layout(path, width=2, header_size=0)


def raw_token_layout(path: Path, width: int, header_size: int) -> TokenFileLayout:
    """Describe a raw file of `width`-byte little-endian tokens after `header_size` bytes."""
    size = path.stat().st_size
    body = size - header_size
    if body < 0:
        raise DataError(f"token file {path} has {size} bytes, fewer than the header size {header_size}")
    if body % width:
        raise DataError(
            f"token file {path} has {body} bytes of tokens, not a multiple of the token width "
            f"{width} bytes; check token_width and header_size, or whether the file is truncated"
        )
    dtype = {2: "<u2", 3: "u1", 4: "<u4"}[width]
    return TokenFileLayout(path, header_size, body // width, width, dtype)


def map_tokens(layout: TokenFileLayout) -> np.ndarray:
    """Memory-map the tokens of a 2- or 4-byte token file (read-only, not read into memory)."""
    if layout.count == 0:
        raise DataError(f"token file {layout.path} contains no tokens; the dataset is empty")
    return np.memmap(layout.path, dtype=layout.dtype, mode="r", offset=layout.offset, shape=(layout.count,))


def read_token_chunks(layout: TokenFileLayout, chunk_tokens: int = SCAN_CHUNK_TOKENS) -> Iterator[np.ndarray]:
    """Yield the tokens of a file in chunks, as uint16 or uint32 arrays.

    Reads with ordinary file reads, not a memory map, so a scan does not grow the resident set.
    """
    with open(layout.path, "rb") as file:
        file.seek(layout.offset)
        remaining = layout.count
        while remaining:
            take = min(chunk_tokens, remaining)
            data = file.read(take * layout.width)
            if layout.width == 3:
                triples = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)  # (n, 3)
                yield triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
            else:
                yield np.frombuffer(data, dtype=layout.dtype)
            remaining -= take


def find_token_out_of_range(tokens: np.ndarray, vocab_size: int) -> int | None:
    """Return the index of the first token >= vocab_size, scanning in chunks, or None."""
    for start in range(0, len(tokens), SCAN_CHUNK_TOKENS):
        chunk = np.asarray(tokens[start:start + SCAN_CHUNK_TOKENS])
        bad = np.flatnonzero(chunk >= vocab_size)
        if len(bad):
            return start + int(bad[0])
    return None
