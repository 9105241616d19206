"""Tokenizers: text <-> token ids, and the ChatML chat template.

Three tokenizers share one interface (``encode``, ``encode_batch``, ``decode``, ``vocab_size``,
``pad_id``/``bos_id``/``eos_id``, ``token_to_id``, ``id_to_token``, ``apply_chat_template``):

* ``BPETokenizer``: byte-level BPE trained with Hugging Face ``tokenizers`` (``train_tokenizer``),
  the MiniMind setup; saved as ``tokenizer.json`` + ``tokenizer_config.json`` that
  ``transformers.PreTrainedTokenizerFast.from_pretrained`` loads.
* ``CharTokenizer``: one id per character seen in the training texts (smallest demos).
* ``ByteTokenizer``: one id per UTF-8 byte, a fixed vocabulary of 3 + 256 (no training).

Each has ``save(directory)``; ``load_tokenizer(directory)`` gives back the same kind.

Special tokens, as in MiniMind (ids 0, 1, 2 in every tokenizer here):

    0 <|endoftext|>  padding and unknown   (pad_id = unk_id = 0)
    1 <|im_start|>   beginning of a text or of a chat turn   (bos_id = 1)
    2 <|im_end|>     end of a text or of a chat turn         (eos_id = 2)

The chat template is ChatML: each message is ``<|im_start|>{role}\\n{content}<|im_end|>\\n``, and a
generation prompt is ``<|im_start|>assistant\\n``.

``encode(text, add_special_tokens=True)`` puts ``<|im_start|>`` (BOS) in front, nothing at the end;
the datasets in ``course_lib.data`` add the EOS of a document themselves. Special-token strings that
occur in the text are encoded as the special token (that is how chat-formatted text works).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

__all__ = [
    "SPECIAL_TOKENS", "CHAT_TEMPLATE", "apply_chat_template", "train_tokenizer", "load_tokenizer",
    "BPETokenizer", "CharTokenizer", "ByteTokenizer",
]

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

# Jinja version of ``apply_chat_template`` below, stored in tokenizer_config.json for transformers.
# The "-" trims keep the output byte-identical to our Python rendering. The {% generation %} block
# marks what an assistant turn trains on (its content and <|im_end|>, as ``data.SFTDataset``), so
# transformers' ``return_assistant_tokens_mask=True`` gives the same mask.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}{{- message['content'] + '<|im_end|>' -}}{%- endgeneration -%}{{- '\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

CHAT_ROLES = ("system", "user", "assistant")


def apply_chat_template(messages: Sequence[dict], add_generation_prompt: bool = False,
                        bos: str = SPECIAL_TOKENS[1], eos: str = SPECIAL_TOKENS[2]) -> str:
    """Render a conversation in ChatML.

    ``messages``: ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
    Each message becomes ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; with
    ``add_generation_prompt`` the text ends with ``<|im_start|>assistant\\n`` so that a model
    continues as the assistant.
    """
    if not isinstance(messages, (list, tuple)):
        raise ValueError(f"messages must be a list of {{'role', 'content'}} dicts, got "
                         f"{type(messages).__name__}")
    parts = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {m!r:.80}")
        if m["role"] not in CHAT_ROLES:
            raise ValueError(f"messages[{i}] has role={m['role']!r}; allowed: {', '.join(CHAT_ROLES)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"messages[{i}] content must be a string, got "
                             f"{type(m['content']).__name__}")
        parts.append(f"{bos}{m['role']}\n{m['content']}{eos}\n")
    if add_generation_prompt:
        parts.append(f"{bos}assistant\n")
    return "".join(parts)


def _check_special_tokens(special_tokens: Sequence[str]) -> tuple[str, ...]:
    special_tokens = tuple(special_tokens)
    if len(special_tokens) < 3 or not all(isinstance(s, str) and s for s in special_tokens):
        raise ValueError(f"special_tokens={special_tokens!r} must hold at least 3 non-empty "
                         "strings: (pad/unk, bos, eos, ...optional extras)")
    if len(set(special_tokens)) != len(special_tokens):
        raise ValueError(f"special_tokens={special_tokens!r} contains duplicates")
    return special_tokens


class _TokenizerBase:
    """Shared behaviour. Subclasses set ``special_tokens`` (ids 0..k-1) and implement
    ``encode``, ``decode``, ``vocab_size``, ``token_to_id``, ``id_to_token``."""

    special_tokens: tuple[str, ...] = SPECIAL_TOKENS

    # ids 0/1/2 by construction in every tokenizer of this module
    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 0

    @property
    def bos_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    @property
    def pad_token(self) -> str:
        return self.special_tokens[0]

    @property
    def bos_token(self) -> str:
        return self.special_tokens[1]

    @property
    def eos_token(self) -> str:
        return self.special_tokens[2]

    def __len__(self) -> int:
        return self.vocab_size

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[int]]:
        return [self.encode(t, add_special_tokens=add_special_tokens) for t in texts]

    def decode_batch(self, batch: Iterable[Sequence[int]], skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in batch]

    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
        """ChatML text of a conversation (see module docstring); encode it with ``encode``."""
        return apply_chat_template(messages, add_generation_prompt, self.bos_token, self.eos_token)

    def _check_ids(self, ids) -> list[int]:
        if hasattr(ids, "tolist"):  # a tensor or numpy array
            ids = ids.tolist()
        ids = list(ids)
        for i, t in enumerate(ids):
            if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < self.vocab_size:
                raise ValueError(f"ids[{i}]={t!r} is not a token id in [0, {self.vocab_size})")
        return ids

    # char/byte tokenizers save themselves as one small JSON file (BPE overrides ``save``)
    SIMPLE_FILE = "simple_tokenizer.json"

    def _simple_state(self) -> dict:
        raise NotImplementedError

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``simple_tokenizer.json`` to ``directory``; ``load_tokenizer`` reads it back."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {"type": type(self).__name__, "special_tokens": list(self.special_tokens),
                 **self._simple_state()}
        with open(d / self.SIMPLE_FILE, "w", encoding="utf-8") as f:
            json.dump(state, f, ensure_ascii=False)
        return d

    def _split_specials(self, text: str) -> list[str]:
        """Text split so that each special-token string is its own piece."""
        pattern = "(" + "|".join(re.escape(s) for s in self.special_tokens) + ")"
        return [p for p in re.split(pattern, text) if p]


# --------------------------------------------------------------------------------------------
# byte-level BPE (Hugging Face tokenizers)
# --------------------------------------------------------------------------------------------
class BPETokenizer(_TokenizerBase):
    """A byte-level BPE tokenizer: a thin wrapper around a ``tokenizers.Tokenizer``.

    Byte-level means the base alphabet is the 256 bytes, so every string encodes (no unknown
    token) and ``decode(encode(text)) == text`` exactly.
    """

    def __init__(self, tokenizer, special_tokens: Sequence[str] = SPECIAL_TOKENS):
        self.special_tokens = _check_special_tokens(special_tokens)
        self._tok = tokenizer
        for i, s in enumerate(self.special_tokens[:3]):
            if tokenizer.token_to_id(s) != i:
                raise ValueError(f"special token {s!r} must have id {i}, has "
                                 f"{tokenizer.token_to_id(s)!r}")

    @property
    def backend(self):
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` a BOS id (1) is put in front (by id, not
        by the backend's post-processor, which a foreign tokenizer.json such as MiniMind's may lack)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        return [self.bos_id] * add_special_tokens + self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[list[int]]:
        """``encode`` for many texts at once, in parallel inside ``tokenizers`` (much faster)."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ValueError(f"texts[{i}] must be a str, got {type(t).__name__}")
        return [[self.bos_id] * add_special_tokens + e.ids
                for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(self._check_ids(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, id: int) -> str | None:
        """The vocabulary entry (byte-level form: e.g. 'Ġthe' for ' the'); see ``token_text``."""
        return self._tok.id_to_token(id)

    def token_text(self, id: int) -> str:
        """What one token stands for as text (may be a partial UTF-8 character, shown as '�')."""
        return self._tok.decode([id], skip_special_tokens=False)

    def tokens(self, text: str) -> list[str]:
        """The text of each token of ``text``, for displays (``"|".join(tok.tokens(x))``)."""
        return [self.token_text(i) for i in self.encode(text)]

    # ---- files --------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, model_max_length: int = 32768) -> Path:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` to ``directory``.

        ``transformers.PreTrainedTokenizerFast.from_pretrained(directory)`` (or ``AutoTokenizer``)
        loads the result, encodes identically and renders the same chat template.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self._tok.save(str(d / "tokenizer.json"))
        pad, bos, eos = self.special_tokens[:3]
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": bos,
            "eos_token": eos,
            "pad_token": pad,
            "unk_token": pad,
            "additional_special_tokens": list(self.special_tokens[3:]),
            "add_bos_token": True,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,  # keep decode exact
            "model_max_length": model_max_length,
            "padding_side": "left",                  # batched generation in transformers needs left padding
            "chat_template": CHAT_TEMPLATE,
        }
        with open(d / "tokenizer_config.json", "w", encoding="utf-8") as f:
            json.dump(config, f, ensure_ascii=False, indent=2)
        return d

    def to_transformers(self):
        """This tokenizer as a ``transformers.PreTrainedTokenizerFast`` (needs transformers)."""
        import tempfile

        from transformers import PreTrainedTokenizerFast

        with tempfile.TemporaryDirectory() as tmp:
            self.save(tmp)
            return PreTrainedTokenizerFast.from_pretrained(tmp)

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"


def _build_bpe_backend(special_tokens: Sequence[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tok = Tokenizer(models.BPE())
    # No normalizer: any normalisation would break the exact round trip.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    bos = special_tokens[1]
    # add_special_tokens=True puts BOS in front (ids are fixed: BOS is id 1).
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, 1)])
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int = 6400,
                    special_tokens: Sequence[str] = SPECIAL_TOKENS, min_frequency: int = 2,
                    show_progress: bool = False) -> BPETokenizer:
    """Train a byte-level BPE tokenizer on ``texts`` (documents or lines).

    The vocabulary holds the special tokens (ids 0, 1, 2, ... in the order given: pad/unk, bos,
    eos, extras), the 256 byte tokens, then merges up to ``vocab_size``. ``min_frequency``: a pair
    must occur this often to be merged. About 12 s for 3 M characters at 6400 on 2 CPU cores.
    """
    from tokenizers import pre_tokenizers, trainers

    special_tokens = _check_special_tokens(special_tokens)
    floor = 256 + len(special_tokens)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < floor:
        raise ValueError(f"vocab_size={vocab_size!r} must be an int >= {floor} "
                         f"(256 bytes + {len(special_tokens)} special tokens)")
    if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
        raise ValueError(f"min_frequency={min_frequency!r} must be an int >= 1")
    if isinstance(texts, str):
        raise ValueError("texts must be an iterable of strings, not one string (wrap it in a list)")
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError("texts is empty: nothing to train the tokenizer on")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] must be a str, got {type(t).__name__}")

    tok = _build_bpe_backend(special_tokens)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, even unseen ones
        show_progress=show_progress,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return BPETokenizer(tok, special_tokens)


def _load_simple(file: Path):
    try:
        with open(file, encoding="utf-8") as f:
            state = json.load(f)
        kind, specials = state["type"], state["special_tokens"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{file}: not a saved CharTokenizer/ByteTokenizer ({e})") from None
    if kind == "CharTokenizer":
        return CharTokenizer(state.get("chars", []), specials)
    if kind == "ByteTokenizer":
        return ByteTokenizer(specials)
    raise ValueError(f"{file}: unknown tokenizer type {kind!r}")


def load_tokenizer(path: str | os.PathLike):
    """Load a tokenizer saved with ``save``: a folder (or file) holding ``tokenizer.json`` gives a
    ``BPETokenizer`` (any HF ``tokenizers`` byte-level file with the special tokens at ids 0-2
    works); ``simple_tokenizer.json`` gives the ``CharTokenizer`` or ``ByteTokenizer`` saved there.

    BPE special-token names come from ``tokenizer_config.json`` when present (else the defaults).
    """
    from tokenizers import Tokenizer

    p = Path(path)
    if p.is_dir() and not (p / "tokenizer.json").is_file() and (p / _TokenizerBase.SIMPLE_FILE).is_file():
        return _load_simple(p / _TokenizerBase.SIMPLE_FILE)
    if p.is_file() and p.name == _TokenizerBase.SIMPLE_FILE:
        return _load_simple(p)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise FileNotFoundError(f"no tokenizer file at {file} (nor {_TokenizerBase.SIMPLE_FILE})")
    try:
        backend = Tokenizer.from_file(str(file))
    except Exception as e:  # tokenizers raises a bare Exception on bad JSON
        raise ValueError(f"{file}: not a valid tokenizers JSON file ({e})") from None
    specials = SPECIAL_TOKENS
    config_file = file.parent / "tokenizer_config.json"
    if config_file.is_file():
        try:
            cfg = json.loads(config_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{config_file}: not valid JSON ({e}); repair it, or delete it to use the default "
                             "special tokens") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{config_file}: must hold a JSON object, got {type(cfg).__name__}")

        def name(key: str, default: str) -> str:
            v = cfg.get(key, default)
            return v.get("content", default) if isinstance(v, dict) else (v or default)

        extras = [e.get("content") if isinstance(e, dict) else e
                  for e in cfg.get("additional_special_tokens", [])]
        first = (name("pad_token", SPECIAL_TOKENS[0]), name("bos_token", SPECIAL_TOKENS[1]),
                 name("eos_token", SPECIAL_TOKENS[2]))
        # MiniMind's config repeats BOS/EOS among the extras: keep each special token once
        specials = tuple(dict.fromkeys([*first, *(e for e in extras if e)]))
    return BPETokenizer(backend, specials)


# --------------------------------------------------------------------------------------------
# character and byte tokenizers (no training, for the smallest demos)
# --------------------------------------------------------------------------------------------
class CharTokenizer(_TokenizerBase):
    """One id per character: special tokens first (ids 0..k-1), then the characters seen in the
    training texts in sorted order. Characters never seen encode as ``<|endoftext|>`` (unk, id 0),
    so the round trip is exact only for texts made of seen characters.
    """

    def __init__(self, chars: Sequence[str], special_tokens: Sequence[str] = SPECIAL_TOKENS):
        self.special_tokens = _check_special_tokens(special_tokens)
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars contains duplicates")
        self._itos = list(self.special_tokens) + chars
        self._stoi = {s: i for i, s in enumerate(self._itos)}

    @classmethod
    def from_texts(cls, texts: Iterable[str],
                   special_tokens: Sequence[str] = SPECIAL_TOKENS) -> "CharTokenizer":
        if isinstance(texts, str):
            texts = [texts]
        seen: set[str] = set()
        for t in texts:
            if not isinstance(t, str):
                raise ValueError(f"texts must hold strings, got {type(t).__name__}")
            seen.update(t)
        if not seen:
            raise ValueError("texts is empty: no characters to build a vocabulary from")
        return cls(sorted(seen), special_tokens)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    @property
    def chars(self) -> list[str]:
        return self._itos[len(self.special_tokens):]

    def _simple_state(self) -> dict:
        return {"chars": self.chars}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        ids = [self.bos_id] if add_special_tokens else []
        specials = set(self.special_tokens)
        for piece in self._split_specials(text):
            if piece in specials:
                ids.append(self._stoi[piece])
            else:
                ids.extend(self._stoi.get(c, self.unk_id) for c in piece)
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        k = len(self.special_tokens)
        return "".join(self._itos[i] for i in self._check_ids(ids)
                       if not (skip_special_tokens and i < k))

    def token_to_id(self, token: str) -> int | None:
        return self._stoi.get(token)

    def id_to_token(self, id: int) -> str | None:
        return self._itos[id] if 0 <= id < len(self._itos) else None

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class ByteTokenizer(_TokenizerBase):
    """One id per UTF-8 byte: special tokens at 0..k-1, byte ``b`` at id ``k + b``.

    No training and no unknown tokens; a Chinese character costs 3 ids. ``decode`` of a cut-off
    multi-byte character gives '�' (U+FFFD) for the incomplete bytes.
    """

    def __init__(self, special_tokens: Sequence[str] = SPECIAL_TOKENS):
        self.special_tokens = _check_special_tokens(special_tokens)
        self._offset = len(self.special_tokens)

    @property
    def vocab_size(self) -> int:
        return self._offset + 256

    def _simple_state(self) -> dict:
        return {}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        ids = [self.bos_id] if add_special_tokens else []
        index = {s: i for i, s in enumerate(self.special_tokens)}
        for piece in self._split_specials(text):
            if piece in index:
                ids.append(index[piece])
            else:
                ids.extend(b + self._offset for b in piece.encode("utf-8"))
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        out, buf = [], bytearray()
        for i in self._check_ids(ids):
            if i >= self._offset:
                buf.append(i - self._offset)
                continue
            out.append(buf.decode("utf-8", errors="replace"))
            buf = bytearray()
            if not skip_special_tokens:
                out.append(self.special_tokens[i])
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)

    def token_to_id(self, token: str) -> int | None:
        if token in self.special_tokens:
            return self.special_tokens.index(token)
        b = token.encode("utf-8")
        return self._offset + b[0] if len(b) == 1 else None

    def id_to_token(self, id: int) -> str | None:
        if 0 <= id < self._offset:
            return self.special_tokens[id]
        if self._offset <= id < self.vocab_size:
            b = id - self._offset
            return chr(b) if b < 128 else f"<0x{b:02X}>"
        return None

    def __repr__(self) -> str:
        return f"ByteTokenizer(vocab_size={self.vocab_size})"
