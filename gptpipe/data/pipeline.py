"""The data pipeline of a run: what the data operations collected, finalized into TokenStreams.

Test split (TEST_FRACTION): a source made of several documents gives its last documents, in
load order, to the test set, as many as come closest to TEST_FRACTION of its tokens (at least
one document stays in training). A source that is one text or one token-id stream gives its
tail. With `load_tokenized_test`, the test set is that file and nothing else is split.

Document starts: every text document is preceded by a marker token, the doc start token
(set_doc_start_token) when one is set, else the fragment-start token.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gptpipe.data.joined import JoinedTokens
from gptpipe.data.sampler import find_doc_starts
from gptpipe.data.tokenizer import ByteTokenizer, TokenIdTokenizer, Tokenizer, same_tokenizer
from gptpipe.errors import DataError

log = logging.getLogger("gptpipe.data")

DEFAULT_CORPUS_MAX_BYTES = 8 << 20
"""The default corpus stops before the first file that would take it past 8 MiB."""
FINGERPRINT_SAMPLES = 256
FINGERPRINT_WINDOW = 16


@dataclass
class TokenStreams:
    """The train and test tokens of a run and the vocabulary they use."""

    train: np.ndarray | JoinedTokens
    """1-D token ids, or (N, L) rows for record datasets.

    A read-only np.memmap when the only source is memory-mapped, and a `JoinedTokens` view when
    memory-mapped sources are joined with others. Index it as an array; np.asarray copies it all.
    """
    test: np.ndarray | JoinedTokens
    vocab_size: int
    """Tokens the model embeds, special tokens included."""
    unknown_token: int
    """`<?>`: token dropout puts it in place of dropped input tokens."""
    fragment_start_token: int
    doc_start_token: int | None
    """The token that starts each document, or None for one undivided stream."""
    tokenizer: Tokenizer
    token_unit: str | None
    """"byte" or "char" when one token is one byte or one character of text (bits per byte or char)."""
    description: str
    train_doc_starts: np.ndarray | None = None
    """Positions in `train` where a document starts (int64, sorted), or None without documents."""
    test_doc_starts: np.ndarray | None = None

    def special_token_ids(self) -> dict[str, int | None]:
        """Return the special token ids, which a checkpoint stores so a loaded model and its data can be compared."""
        return {
            "unknown": self.unknown_token,
            "fragment_start": self.fragment_start_token,
            "doc_start": self.doc_start_token,
        }

    def fingerprint(self) -> str:
        """Hash the vocabulary, sizes and a fixed sample of the tokens (cheap on memory-mapped data)."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(repr((self.vocab_size, self.special_token_ids(), self.train.shape, self.test.shape)).encode())
        for tokens in (self.train, self.test):
            flat_length = len(tokens)
            if flat_length == 0:
                continue
            starts = np.linspace(0, flat_length - 1, num=min(FINGERPRINT_SAMPLES, flat_length), dtype=np.int64)
            for start in np.unique(starts):
                digest.update(np.ascontiguousarray(tokens[start:start + FINGERPRINT_WINDOW], dtype=np.int64).tobytes())
        return digest.hexdigest()


@dataclass
class Source:
    """Tokens from one data operation, before the train/test split."""

    name: str
    tokens: np.ndarray
    doc_starts: np.ndarray | None = None
    """Start index of each document in `tokens` (int64), or None for one stream."""
    marked: bool = False
    """The tokens already hold a marker token before each document (an indexed docset)."""
    role: str = "split"
    """"split" (split by TEST_FRACTION), "train" or "test"."""
    token_ids: bool = False
    """Token ids read from a file, checked against the vocabulary by `check_ids`."""
    check_ids: Callable[[int], None] | None = None
    marker_token: int | None = None
    """For marked sources: the marker token the tokens hold."""
    is_default: bool = False


@dataclass
class DataPipeline:
    """The data state of a run (`RunState.data`), built up by the data operations."""

    tokenizer: Tokenizer | None = None
    token_vocab: TokenIdTokenizer | None = None
    doc_start_token: int | None = None
    sources: list[Source] = field(default_factory=list)
    records: tuple[np.ndarray, np.ndarray] | None = None
    """(train, test) rows of a record dataset such as make_binary_op_dataset."""
    _cache: tuple[float, TokenStreams] | None = None

    # --- building -------------------------------------------------------------------------

    def set_tokenizer(self, tokenizer: Tokenizer) -> None:
        text_sources = [s for s in self.sources if not s.token_ids and not s.is_default]
        if text_sources and self.tokenizer is not None and not same_tokenizer(self.tokenizer, tokenizer):
            raise DataError(
                f"cannot switch to the {tokenizer.name} tokenizer: {text_sources[0].name} was already "
                f"encoded with the {self.tokenizer.name} tokenizer; set the tokenizer before loading text"
            )
        self.tokenizer = tokenizer
        self._changed()

    def text_tokenizer(self, operation: str) -> Tokenizer:
        """Return the tokenizer for text; default to bytes, unless the data is token ids."""
        if self.tokenizer is None:
            if self.token_vocab is not None:
                raise DataError(
                    f"{operation} reads text, but set_vocab_size() declared token-id data and no tokenizer "
                    "is set; call load_tokenizer(path) (or make_byte_tokenizer()) before it, or load token "
                    "ids with load_tokenized_train(path)"
                )
            log.info("%s: no tokenizer set, using the byte tokenizer (one token per byte)", operation)
            self.tokenizer = ByteTokenizer()
        return self.tokenizer

    def add_source(self, source: Source) -> None:
        self._reject_with_records(source.name)
        self.sources = [s for s in self.sources if not s.is_default]
        self.sources.append(source)
        self._changed()

    def add_documents(self, name: str, documents: list[str], operation: str, is_default: bool = False) -> None:
        """Tokenize `documents` and add them as one source."""
        self._reject_with_records(name)
        tokenizer = self.text_tokenizer(operation)
        documents = [d for d in documents if d]
        if not documents:
            raise DataError(f"{name} contains no text; the dataset is empty")
        encoded = tokenizer.encode_batch(documents)
        lengths = np.array([len(tokens) for tokens in encoded], dtype=np.int64)
        doc_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        tokens = np.concatenate(encoded)
        self.add_source(Source(name, tokens, doc_starts, is_default=is_default))

    def _reject_with_records(self, name: str) -> None:
        if self.records is not None:
            raise DataError(
                f"{name} cannot be combined with make_binary_op_dataset(), which defines the whole "
                "dataset; use one or the other"
            )

    def add_default_corpus(self) -> None:
        paths, documents = default_corpus_documents()
        total = sum(len(d) for d in documents)
        log.info(
            "no data operation in the script: training on the default corpus, %d Python files "
            "(%.1f MB) of the standard library in %s, capped at %d MiB",
            len(documents), total / 1e6, stdlib_dir(), DEFAULT_CORPUS_MAX_BYTES >> 20,
        )
        self.add_documents("the default corpus (Python standard library)", documents, "the default corpus",
                           is_default=True)

    def set_token_vocab(self, vocabulary: TokenIdTokenizer) -> None:
        self.token_vocab = vocabulary
        self._changed()

    def set_doc_start_token(self, token: int) -> None:
        self.doc_start_token = token
        self._changed()

    def set_records(self, train: np.ndarray, test: np.ndarray, tokenizer: Tokenizer) -> None:
        if self.sources or self.token_vocab is not None:
            raise DataError(
                "make_binary_op_dataset() defines the whole dataset and its vocabulary; remove the other "
                "data operations from the script"
            )
        self.tokenizer = tokenizer
        self.records = (train, test)
        self._changed()

    def _changed(self) -> None:
        self._cache = None

    @property
    def has_data(self) -> bool:
        return bool(self.sources) or self.records is not None

    # --- finalizing -----------------------------------------------------------------------

    def streams(self, test_fraction: float) -> TokenStreams:
        """Split, concatenate and check the sources; cached until a data operation changes them."""
        if self._cache is not None and self._cache[0] == test_fraction:
            return self._cache[1]
        if not 0.0 <= test_fraction < 1.0:
            raise DataError(f"TEST_FRACTION must be at least 0 and below 1, got {test_fraction}")
        streams = self._build_records() if self.records is not None else self._build_streams(test_fraction)
        log.info("data: %s", streams.description)
        self._cache = (test_fraction, streams)
        return streams

    def _vocabulary(self) -> Tokenizer:
        vocabulary = self._base_vocabulary()
        if self.doc_start_token is not None and self.doc_start_token >= vocabulary.vocab_size:
            raise DataError(
                f"doc start token {self.doc_start_token} is outside the vocabulary of {vocabulary.vocab_size} "
                "tokens; pass an id below it to set_doc_start_token() or raise set_vocab_size()"
            )
        return vocabulary

    def _base_vocabulary(self) -> Tokenizer:
        if self.token_vocab is not None:
            if self.tokenizer is not None and self.tokenizer.base_vocab_size > self.token_vocab.base_vocab_size:
                raise DataError(
                    f"the {self.tokenizer.name} tokenizer has {self.tokenizer.base_vocab_size} tokens but "
                    f"set_vocab_size() declares {self.token_vocab.base_vocab_size}; raise N to at least "
                    f"{self.tokenizer.base_vocab_size}"
                )
            return self.token_vocab
        if self.tokenizer is not None:
            return self.tokenizer
        raise DataError(
            "the script loads token ids but sets no vocabulary; call set_vocab_size(N, K) before train() "
            "(for GPT-2 token ids: set_vocab_size(50257, 2))"
        )

    def _build_records(self) -> TokenStreams:
        train, test = self.records  # type: ignore[misc]
        tokenizer = self.tokenizer
        assert tokenizer is not None
        return TokenStreams(
            train=train, test=test, vocab_size=tokenizer.vocab_size, unknown_token=tokenizer.unknown_token,
            fragment_start_token=tokenizer.fragment_start_token, doc_start_token=None, tokenizer=tokenizer,
            token_unit=None,
            description=f"{tokenizer.name} equations: {len(train)} train and {len(test)} test rows of "
                        f"{train.shape[1]} tokens, {tokenizer.vocab_size} tokens in the vocabulary",
        )

    def _build_streams(self, test_fraction: float) -> TokenStreams:
        vocabulary = self._vocabulary()
        marker = self.doc_start_token if self.doc_start_token is not None else vocabulary.fragment_start_token
        dtype = np.uint16 if vocabulary.vocab_size <= 1 << 16 else np.uint32
        has_documents = False

        train_parts: list[_Part] = []
        test_parts: list[_Part] = []
        explicit_test = any(s.role == "test" for s in self.sources)
        for source in self.sources:
            self._check_source(source, vocabulary, marker)
            if source.doc_starts is not None:
                has_documents = True
            tokens = source.tokens if source.marked else _insert_markers(source, marker, dtype)
            if source.role == "test":
                test_parts.append(_Part(source, 0, len(tokens)))
            elif source.role == "train" and explicit_test:
                train_parts.append(_Part(source, 0, len(tokens)))
            else:
                split = _split_index(source, len(tokens), test_fraction)
                train_parts.append(_Part(source, 0, split))
                test_parts.append(_Part(source, split, len(tokens)))

        train = _join([part.tokens() for part in train_parts], dtype)
        test = _join([part.tokens() for part in test_parts], dtype)
        if len(train) == 0:
            raise DataError("the training set is empty: the data operations loaded no tokens")
        doc_start_token = self.doc_start_token if self.doc_start_token is not None else (
            marker if has_documents else None)
        train_doc_starts = test_doc_starts = None
        if doc_start_token is not None:
            train_doc_starts = _joined_doc_starts(train_parts, doc_start_token)
            test_doc_starts = _joined_doc_starts(test_parts, doc_start_token)
        tokenizer = self.tokenizer if self.tokenizer is not None else vocabulary
        # NOTE: the document markers are tokens too, so with many short documents bits per byte
        # computed per token is slightly off (one marker per document).
        token_unit = tokenizer.token_unit if self.token_vocab is None else None
        names = ", ".join(s.name for s in self.sources)
        return TokenStreams(
            train=train, test=test, vocab_size=vocabulary.vocab_size, unknown_token=vocabulary.unknown_token,
            fragment_start_token=vocabulary.fragment_start_token, doc_start_token=doc_start_token,
            train_doc_starts=train_doc_starts, test_doc_starts=test_doc_starts,
            tokenizer=tokenizer, token_unit=token_unit,
            description=f"{_count(len(train))} train and {_count(len(test))} test tokens from {names}; "
                        f"{tokenizer.name} tokenizer, {vocabulary.vocab_size} tokens in the vocabulary",
        )

    def _check_source(self, source: Source, vocabulary: Tokenizer, marker: int) -> None:
        if source.token_ids and source.check_ids is not None:
            source.check_ids(vocabulary.vocab_size)
        if source.marked and source.marker_token != marker:
            raise DataError(
                f"{source.name} marks documents with token {source.marker_token}, but this script's data "
                f"uses {marker}; index the folder again with the same tokenizer and vocabulary settings"
            )


def _insert_markers(source: Source, marker: int, dtype: type) -> np.ndarray:
    if source.doc_starts is None:
        return source.tokens
    marked = np.insert(np.asarray(source.tokens, dtype=dtype), source.doc_starts, marker)
    source.doc_starts = source.doc_starts + np.arange(len(source.doc_starts))
    source.marked = True
    source.marker_token = marker
    source.tokens = marked
    return marked


@dataclass
class _Part:
    """Tokens begin .. end of a source: its share of the train or the test stream."""

    source: Source
    begin: int
    end: int

    def tokens(self) -> np.ndarray:
        return self.source.tokens[self.begin:self.end]

    def doc_starts(self, doc_start_token: int) -> np.ndarray:
        """Return where documents start in this part: from the source's own list, else by scanning for the token."""
        starts = self.source.doc_starts
        if starts is None:
            return find_doc_starts(self.tokens(), doc_start_token)
        low, high = np.searchsorted(starts, [self.begin, self.end])
        return starts[low:high] - self.begin


def _joined_doc_starts(parts: list[_Part], doc_start_token: int) -> np.ndarray:
    """Return the document starts of the parts joined in order (as `_join` joins their tokens)."""
    found, offset = [], 0
    for part in parts:
        found.append(part.doc_starts(doc_start_token) + offset)
        offset += part.end - part.begin
    return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


def _split_index(source: Source, length: int, test_fraction: float) -> int:
    """Return where the test part of a source starts (see the module docstring)."""
    target = int(round(length * (1.0 - test_fraction)))
    if test_fraction == 0.0:
        return length
    starts = source.doc_starts
    if starts is None or len(starts) < 2:
        return min(max(target, 1), length)
    nearest = int(np.argmin(np.abs(starts - target)))
    return int(starts[max(nearest, 1)])


def _join(parts: list[np.ndarray], dtype: type) -> np.ndarray | JoinedTokens:
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.zeros(0, dtype=dtype)
    if len(parts) == 1:
        return parts[0]
    if any(isinstance(part, np.memmap) for part in parts):
        # Copying would load a memory-mapped corpus, which may be larger than RAM, into memory.
        return JoinedTokens(parts, dtype)
    return np.concatenate([np.asarray(p, dtype=dtype) for p in parts])


def _count(number: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if number >= size:
            return f"{number / size:.2f} {unit}"
    return str(number)


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def default_corpus_documents(max_bytes: int = DEFAULT_CORPUS_MAX_BYTES) -> tuple[list[Path], list[str]]:
    """Read the standard library's *.py files in sorted path order, skipping site-packages, up to `max_bytes`."""
    root = stdlib_dir()
    paths: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("site-packages", "__pycache__")]
        paths.extend(Path(folder) / name for name in names if name.endswith(".py"))
    paths.sort()

    chosen: list[Path] = []
    documents: list[str] = []
    total = 0
    for path in paths:
        data = path.read_bytes()
        if total + len(data) > max_bytes:
            break
        total += len(data)
        chosen.append(path)
        documents.append(data.decode("utf-8", errors="replace"))
    if not documents:
        raise DataError(f"the default corpus found no Python files in {root}; add a data operation to the script")
    return chosen, documents


def pipeline_of(state: Any) -> DataPipeline:
    """Return the run's DataPipeline, creating it on first use."""
    if state.data is None:
        state.data = DataPipeline()
    return state.data


def streams_for(state: Any) -> TokenStreams:
    """Finalize the run's data (the default corpus when no data operation ran) and return it, cached."""
    pipeline = pipeline_of(state)
    if not pipeline.has_data:
        if pipeline.token_vocab is not None:
            raise DataError(
                "set_vocab_size() declared token-id data but no data was loaded; add "
                "load_tokenized_train(path) or load_indexed_docset_folder(path) before train()"
            )
        pipeline.add_default_corpus()
    test_fraction = float(state.values.get("TEST_FRACTION", 0.05))
    return pipeline.streams(test_fraction)
