"""The data operations of train scripts: tokenizers, data sources and synthetic datasets."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gptpipe.data import binary_op, files, index
from gptpipe.data.pipeline import Source, pipeline_of
from gptpipe.data.tokenizer import BpeTokenizer, ByteTokenizer, CharTokenizer, TokenIdTokenizer
from gptpipe.errors import DataError
from gptpipe.runtime.registry import InputDir, InputFile, operation
from gptpipe.runtime.state import PlanContext, RunState

log = logging.getLogger("gptpipe.data")

TOKENIZER_OPERATIONS = ("make_byte_tokenizer", "make_char_dataset", "load_tokenizer")


# --- plan-time checks ---------------------------------------------------------------------

def _check_text_loader(ctx: PlanContext, *args: object) -> None:
    before = ctx.data_ops_before
    if "set_vocab_size" in before and not any(name in before for name in TOKENIZER_OPERATIONS):
        raise DataError(
            "this operation reads text, but set_vocab_size() declared token-id data and no tokenizer is set; "
            "call load_tokenizer(path) (or make_byte_tokenizer()) before it, or load token ids with "
            "load_tokenized_train(path)"
        )


def _check_vocab_size(ctx: PlanContext, vocab_size: int, extra_tokens: int) -> None:
    if vocab_size < 1:
        raise DataError(f"set_vocab_size needs a vocabulary of at least 1 token, got {vocab_size}")
    TokenIdTokenizer(vocab_size, extra_tokens)


def _check_token_file(ctx: PlanContext, path: str) -> None:
    files.inspect_token_file(path)


def _check_tokenized_folder(ctx: PlanContext, path: str, token_width: int, header_size: int = 0) -> None:
    if token_width not in (2, 3, 4):
        raise DataError(f"token_width must be 2, 3 or 4 bytes, got {token_width}")
    if header_size < 0:
        raise DataError(f"header_size must be 0 or more bytes, got {header_size}")


def _check_index_exists(ctx: PlanContext, path: str) -> None:
    if any(name.startswith("index_") for name in ctx.data_ops_before):
        return
    if not (Path(path) / index.INDEX_JSON).is_file():
        raise DataError(
            f"no gptpipe index in {path} ({index.INDEX_JSON} not found); run index_docset_folder('{path}') "
            "or index_tokenized_folder(...) before loading it"
        )


def _check_binary_op(ctx: PlanContext, modulus: int, op: str, train_fraction: float) -> None:
    binary_op.check_binary_op(modulus, op, train_fraction)


# --- tokenizers and vocabulary ------------------------------------------------------------

@operation(data_op=True)
def make_byte_tokenizer(state: RunState) -> None:
    """Use one token per byte of UTF-8 text (256 tokens, plus gptpipe's 2 special tokens).

    Example: `make_byte_tokenizer()`

    Errors: after text was already loaded with another tokenizer ("set the tokenizer before loading text").
    """
    pipeline_of(state).set_tokenizer(ByteTokenizer())


@operation(data_op=True)
def load_tokenizer(state: RunState, path: InputFile) -> None:
    """Encode text with a BPE tokenizer saved by Hugging Face tokenizers (tokenizer.json).

    Example: `load_tokenizer('${data_dir}/tokenizer.json')`

    Errors: file not found; a file that `tokenizers` cannot read ("cannot read tokenizer file").
    """
    tokenizer = BpeTokenizer.from_file(str(files.require_file(path, "tokenizer file")))
    log.info("load_tokenizer: %s, %d tokens", path, tokenizer.base_vocab_size)
    pipeline_of(state).set_tokenizer(tokenizer)


@operation(data_op=True, check=_check_vocab_size)
def set_vocab_size(state: RunState, vocab_size: int, extra_tokens: int) -> None:
    """Declare token-id data with ids below vocab_size, plus extra_tokens (at least 2) for gptpipe's special tokens.

    Example: `set_vocab_size(50257, 2)`

    Errors: `extra_tokens` below 2 ("leaves no room for gptpipe's 2 special tokens"); token-id data
    loaded without it ("call set_vocab_size(N, K) before train()"); a loaded tokenizer with more
    tokens than `vocab_size`.
    """
    pipeline_of(state).set_token_vocab(TokenIdTokenizer(vocab_size, extra_tokens))


@operation(data_op=True)
def set_doc_start_token(state: RunState, token: int) -> None:
    """Declare the token id that starts each document in token-id data (GPT-2: 50256).

    Example: `set_doc_start_token(50256)`

    Errors: a negative id; an id at or above the vocabulary size.
    """
    if token < 0:
        raise DataError(f"the doc start token must be a token id (0 or more), got {token}")
    pipeline_of(state).set_doc_start_token(token)


# --- text ---------------------------------------------------------------------------------

@operation(data_op=True, check=_check_text_loader)
def make_char_dataset(state: RunState, path: InputFile) -> None:
    """Use one token per character of the file's characters, and the file as the dataset.

    Example: `make_char_dataset('${data_path}')`

    Errors: file not found (the message tells whether its folder exists); empty file; after `set_vocab_size()`
    without a tokenizer.
    """
    text = files.read_text_file(path)
    if not text:
        raise DataError(f"{path} is empty; the dataset is empty")
    pipeline = pipeline_of(state)
    tokenizer = CharTokenizer(text)
    pipeline.set_tokenizer(tokenizer)
    log.info("make_char_dataset: %d characters, %d distinct", len(text), tokenizer.base_vocab_size)
    pipeline.add_documents(f"make_char_dataset({Path(path).name})", [text], "make_char_dataset")


@operation(data_op=True, check=_check_text_loader)
def load_text(state: RunState, path: InputFile) -> None:
    """Add a UTF-8 text file as one document (invalid bytes replaced, and counted in the log).

    Example: `load_text('${data_dir}/book.txt')`

    Errors: file not found; empty file ("contains no text; the dataset is empty"); after
    `set_vocab_size()` without a tokenizer ("call load_tokenizer(path) ... before it").
    """
    text = files.read_text_file(path)
    pipeline_of(state).add_documents(f"load_text({Path(path).name})", [text], "load_text")


@operation(data_op=True, check=_check_text_loader)
def load_folder(state: RunState, path: InputDir) -> None:
    """Add every text file below the folder as one document each; binary files are skipped.

    Example: `load_folder('${data_dir}/articles')`

    Errors: folder not found; no text files; after `set_vocab_size()` without a tokenizer.
    """
    documents, paths = files.read_text_folder(path)
    log.info("load_folder: %d text files in %s", len(paths), path)
    pipeline_of(state).add_documents(f"load_folder({Path(path).name})", documents, "load_folder")


@operation(data_op=True, check=_check_text_loader)
def load_docset(state: RunState, path: InputFile) -> None:
    """Add the documents of a document pack (records of a 4-byte little-endian length, then UTF-8 text).

    Example: `load_docset('${data_dir}/web.docs')`

    Errors: file not found; no documents; a truncated pack ("the record at byte offset N declares
    L bytes but only R remain", or a record whose length bytes are cut off).
    """
    documents = files.read_docset(path)
    log.info("load_docset: %d documents in %s", len(documents), path)
    pipeline_of(state).add_documents(f"load_docset({Path(path).name})", documents, "load_docset")


# --- token ids ----------------------------------------------------------------------------

def _add_token_file(state: RunState, path: str, role: str, operation_name: str) -> None:
    layout = files.inspect_token_file(path)
    tokens = files.map_tokens(layout)
    log.info("%s: %d tokens in %s%s", operation_name, layout.count, path, " (llm.c header)" if layout.llmc else "")

    def check_ids(vocab_size: int) -> None:
        if vocab_size > np.iinfo(np.uint16).max:
            return
        position = 0
        for chunk in files.read_token_chunks(layout):
            bad = np.flatnonzero(chunk >= vocab_size)
            if len(bad):
                first = position + int(bad[0])
                raise DataError(
                    f"token id {int(chunk[bad[0]])} in {path} at byte offset {layout.offset + first * layout.width} "
                    f"is at or above the vocabulary size {vocab_size}; raise N in set_vocab_size(N, K)"
                )
            position += len(chunk)

    source = Source(f"{operation_name}({Path(path).name})", tokens, role=role, token_ids=True, check_ids=check_ids)
    pipeline_of(state).add_source(source)


@operation(data_op=True, check=_check_token_file)
def load_tokenized_train(state: RunState, path: InputFile) -> None:
    """Train on a token-id file: little-endian uint16 tokens, or an llm.c token file (recognised by its header).

    Example: `load_tokenized_train('${data_dir}/fineweb_train_000001.bin')`

    Errors: file not found; no tokens; a length that is not a multiple of 2 bytes; an llm.c header
    whose count does not match the file; a token id at or above the vocabulary size (with the file
    and byte offset).
    """
    _add_token_file(state, path, "train", "load_tokenized_train")


@operation(data_op=True, check=_check_token_file)
def load_tokenized_test(state: RunState, path: InputFile) -> None:
    """Test on a token-id file (same formats as load_tokenized_train) instead of a share of the training data.

    Example: `load_tokenized_test('${data_dir}/fineweb_val_000000.bin')`

    Errors: as for `load_tokenized_train`.
    """
    _add_token_file(state, path, "test", "load_tokenized_test")


# --- indexed folders ----------------------------------------------------------------------

@operation(data_op=True, check=_check_text_loader)
def index_docset_folder(state: RunState, path: InputDir) -> None:
    """Tokenize every document pack in the folder once, writing a token file and document index there.

    Example: `index_docset_folder('${data_dir}/packs')`

    Errors: folder not found; no files; a truncated pack; after `set_vocab_size()` without a tokenizer.
    """
    pipeline = pipeline_of(state)
    tokenizer = pipeline.text_tokenizer("index_docset_folder")
    vocabulary = pipeline.token_vocab or tokenizer
    marker = pipeline.doc_start_token if pipeline.doc_start_token is not None else vocabulary.fragment_start_token
    index.index_docset_folder(path, tokenizer, marker, vocabulary.vocab_size)


@operation(data_op=True, check=_check_tokenized_folder)
def index_tokenized_folder(state: RunState, path: InputDir, token_width: int, header_size: int = 0) -> None:
    """Index the raw token files of a folder (token_width 2, 3 or 4 bytes, header_size bytes skipped per file).

    Example: `index_tokenized_folder('${data_dir}/shards', 2, 1024)`

    Errors: `token_width` not 2, 3 or 4; a negative `header_size`; a file whose length after the
    header is not a multiple of `token_width`.
    """
    index.index_tokenized_folder(path, token_width, header_size)


@operation(data_op=True, check=_check_index_exists)
def load_indexed_docset_folder(state: RunState, path: InputDir) -> None:
    """Train on a folder indexed by index_docset_folder or index_tokenized_folder, memory-mapped, not read into RAM.

    Example: `load_indexed_docset_folder('${data_dir}/packs')`

    Errors: no index in the folder ("run index_docset_folder(...) first"); a damaged index; a
    tokenizer in the script that differs from the index's; a token id at or above the vocabulary
    size (with the source file and byte offset). The log warns when the indexed files changed
    after indexing.
    """
    pipeline = pipeline_of(state)
    opened = index.open_index(path)
    name = f"load_indexed_docset_folder({Path(path).name})"
    log.info("%s: %d tokens, %d documents, memory-mapped", name, opened.info["token_count"], opened.info["doc_count"])
    if opened.kind == "docset":
        tokenizer = index.index_tokenizer(opened, pipeline.tokenizer)
        if pipeline.tokenizer is None:
            pipeline.set_tokenizer(tokenizer)
        source = Source(name, opened.tokens, opened.doc_starts, marked=True,
                        marker_token=opened.info["marker_token"])
    else:
        source = Source(name, opened.tokens, token_ids=True,
                        check_ids=lambda vocab_size: index.find_out_of_range(opened, vocab_size))
    pipeline.add_source(source)


# --- synthetic ----------------------------------------------------------------------------

@operation(data_op=True, check=_check_binary_op)
def make_binary_op_dataset(state: RunState, modulus: int, op: str, train_fraction: float) -> None:
    """Use every equation a op b = c (mod modulus) as data, a seeded train_fraction of them for training.

    Example: `make_binary_op_dataset(97, '+', 0.5)`

    Errors: an unknown operator; a modulus below 2; `/` with a modulus that is not prime;
    `train_fraction` not between 0 and 1; combined with another data operation.
    """
    binary_op.check_binary_op(modulus, op, train_fraction)
    equations = binary_op.binary_op_equations(modulus, op)
    train, test = binary_op.split_equations(equations, train_fraction)
    log.info("make_binary_op_dataset: %d equations mod %d with '%s', %d for training", len(equations), modulus, op,
             len(train))
    pipeline_of(state).set_records(train, test, binary_op.BinaryOpTokenizer(modulus))
