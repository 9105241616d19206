"""course_lib.data: the shift, padding masks, packing boundaries, the SFT loss mask token by token."""
import pytest
import torch
from torch.utils.data import DataLoader

from course_lib.corpus import load_corpus
from course_lib.data import (IGNORE_INDEX, PackedDataset, PretrainDataset, SFTDataset, collate,
                             shift_for_next_token)
from course_lib.tokenizer import ByteTokenizer, CharTokenizer, train_tokenizer

CONV = [{"role": "system", "content": "你是助手。"},
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！有什么可以帮你？"},
        {"role": "user", "content": "谢谢"},
        {"role": "assistant", "content": "不客气。"}]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(load_corpus("peoples_daily", max_chars=100_000), vocab_size=800)


# ---- the shift -----------------------------------------------------------------------------
def test_shift_labels_are_next_tokens():
    ids = torch.tensor([[10, 11, 12, 13], [20, 21, 22, 23]])
    x, y = shift_for_next_token(ids)
    assert x.tolist() == [[10, 11, 12], [20, 21, 22]]
    assert y.tolist() == [[11, 12, 13], [21, 22, 23]]
    assert x.dtype == y.dtype == torch.long


def test_shift_with_target_mask():
    ids = torch.tensor([1, 5, 6, 7, 2])
    mask = torch.tensor([False, False, True, True, True])
    x, y = shift_for_next_token(ids, mask)
    assert x.tolist() == [1, 5, 6, 7]
    assert y.tolist() == [IGNORE_INDEX, 6, 7, 2]


def test_shift_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        shift_for_next_token(torch.tensor([3]))
    with pytest.raises(ValueError, match="integer"):
        shift_for_next_token(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="target_mask shape"):
        shift_for_next_token(torch.tensor([1, 2, 3]), torch.tensor([True, False]))


# ---- pretraining windows -------------------------------------------------------------------
def test_pretrain_item_bos_eos_shift_and_padding():
    bt = ByteTokenizer()
    ds = PretrainDataset(["ab", "abcdefghij"], bt, max_len=6)
    a = ds[0]
    ab = bt.encode("ab")
    assert a["input_ids"].tolist() == [1] + ab + [0, 0, 0]
    assert a["labels"].tolist() == ab + [2] + [IGNORE_INDEX] * 3
    assert a["attention_mask"].tolist() == [1, 1, 1, 0, 0, 0]
    # the 12-token document (BOS + 10 + EOS) is split into windows that overlap by one token,
    # so every token after BOS is a target exactly once
    windows = [ds[i] for i in range(1, len(ds))]
    targets = torch.cat([w["labels"][w["labels"] != IGNORE_INDEX] for w in windows]).tolist()
    assert targets == bt.encode("abcdefghij") + [2]
    assert ds.num_targets == 3 + 11
    for item in windows:
        assert all(v.shape == (6,) for v in item.values())


def test_pretrain_overflow_modes():
    bt = ByteTokenizer()
    long_doc = ["x" * 50]
    assert len(PretrainDataset(long_doc, bt, max_len=10, overflow="truncate")) == 1
    assert len(PretrainDataset(long_doc, bt, max_len=10)) == 6  # 52 tokens: 51 targets / 10
    with pytest.raises(ValueError, match="document 0 has 52 tokens.*max_len"):
        PretrainDataset(long_doc, bt, max_len=10, overflow="error")


def test_pretrain_unpadded_items_and_collate():
    bt = ByteTokenizer()
    ds = PretrainDataset(["a", "abc"], bt, max_len=8, pad_to_max=False)
    assert [len(ds[i]["input_ids"]) for i in range(2)] == [2, 4]
    batch = collate([ds[0], ds[1]])
    assert batch["input_ids"].shape == (2, 4)
    assert batch["labels"][0].tolist() == [bt.encode("a")[0], 2, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["attention_mask"][0].tolist() == [1, 1, 0, 0]
    assert batch["input_ids"][0, 2:].tolist() == [0, 0]
    left = collate([ds[0], ds[1]], padding_side="left")
    assert left["attention_mask"][0].tolist() == [0, 0, 1, 1]


def test_pretrain_bad_input(tok):
    with pytest.raises(ValueError, match="max_len"):
        PretrainDataset(["abc"], tok, max_len=0)
    with pytest.raises(ValueError, match="empty"):
        PretrainDataset([], tok)
    with pytest.raises(ValueError, match="one string"):
        PretrainDataset("abc", tok)
    with pytest.raises(ValueError, match="overflow"):
        PretrainDataset(["abc"], tok, overflow="wrap")


def test_pretrain_on_real_corpus_with_dataloader(tok):
    docs = load_corpus("peoples_daily", max_chars=50_000)
    ds = PretrainDataset(docs, tok, max_len=64)
    loader = DataLoader(ds, batch_size=8, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["input_ids"].shape == batch["labels"].shape == (8, 64)
    real = batch["attention_mask"].bool()
    # where there is a next real token, the label is that token
    assert torch.equal(batch["labels"][:, :-1][real[:, 1:]], batch["input_ids"][:, 1:][real[:, 1:]])
    assert (batch["labels"][~real] == IGNORE_INDEX).all()
    assert (batch["input_ids"][~real] == 0).all()
    assert batch["input_ids"][0, 0] == tok.bos_id


# ---- packing ---------------------------------------------------------------------------------
def _stream(bt, docs):
    out = []
    for d in docs:
        out += [1] + bt.encode(d) + [2]
    return out


@pytest.mark.parametrize("boundary", ["cross", "mask", "reset"])
def test_packed_blocks_cover_the_stream(boundary):
    bt = ByteTokenizer()
    docs = ["abc", "defgh", "ij", "klmnopq"]
    stream = _stream(bt, docs)  # 25 tokens
    ds = PackedDataset(docs, bt, block_size=6, boundary=boundary)
    assert len(ds) == (len(stream) - 1) // 6
    for i in range(len(ds)):
        item = ds[i]
        assert item["input_ids"].tolist() == stream[i * 6: i * 6 + 6]
        for t in range(6):
            target = stream[i * 6 + t + 1]
            crosses = item["input_ids"][t] == 2 and target == 1  # EOS -> next document's BOS
            want = IGNORE_INDEX if (crosses and boundary != "cross") else target
            assert item["labels"][t] == want
        assert (item["attention_mask"] == 1).all()
        assert ("position_ids" in item) == (boundary == "reset")


def test_packed_reset_positions_and_doc_ids():
    bt = ByteTokenizer()
    ds = PackedDataset(["ab", "cde", "f"], bt, block_size=11, boundary="reset")
    item = ds[0]  # stream: BOS a b EOS BOS c d e EOS BOS f EOS (12 tokens)
    assert item["position_ids"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 1]
    assert item["doc_ids"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2]
    assert item["labels"].tolist()[3] == IGNORE_INDEX and item["labels"].tolist()[8] == IGNORE_INDEX


def test_packed_drop_last_and_errors():
    bt = ByteTokenizer()
    ds = PackedDataset(["abcdefg"], bt, block_size=4, drop_last=False)  # 9 tokens: 2 blocks
    assert len(ds) == 2
    tail = ds[1]
    assert tail["attention_mask"].tolist() == [1, 1, 1, 1]
    ds = PackedDataset(["abcdef"], bt, block_size=4, drop_last=False)  # 8 tokens: 1 full + 3
    assert ds[1]["attention_mask"].tolist() == [1, 1, 1, 0]
    assert ds[1]["labels"][-1] == IGNORE_INDEX
    with pytest.raises(ValueError, match="block_size"):
        PackedDataset(["ab"], bt, block_size=100)
    with pytest.raises(ValueError, match="boundary"):
        PackedDataset(["ab"], bt, block_size=2, boundary="wall")
    with pytest.raises(IndexError):
        PackedDataset(["abcdef"], bt, block_size=2)[99]


# ---- SFT -----------------------------------------------------------------------------------
def test_sft_loss_mask_token_by_token(tok):
    ds = SFTDataset([CONV], tok, max_len=256)
    ids, mask = ds.token_targets(0)
    # build the expected sequence segment by segment and say which tokens are targets
    expected_ids, expected_mask = [], []
    for m in CONV:
        header = tok.encode(f"<|im_start|>{m['role']}\n")
        body = tok.encode(m["content"])
        learn = m["role"] == "assistant"
        expected_ids += header + body + [tok.eos_id] + tok.encode("\n")
        expected_mask += [False] * len(header) + [learn] * len(body) + [learn] + [False]
    assert ids.tolist() == expected_ids
    assert mask.tolist() == expected_mask
    # the same ids as encoding the rendered chat in one go
    assert ids.tolist() == tok.encode(tok.apply_chat_template(CONV))
    # targets decode to exactly the assistant contents, each followed by <|im_end|>
    target_text = tok.decode(ids[mask].tolist())
    assert target_text == "你好！有什么可以帮你？<|im_end|>不客气。<|im_end|>"
    # no header token and no newline after <|im_end|> is a target
    item = ds[0]
    labels = item["labels"]
    assert labels.shape == item["input_ids"].shape == (len(ids) - 1,)
    for t in range(len(ids) - 1):
        want = int(ids[t + 1]) if expected_mask[t + 1] else IGNORE_INDEX
        assert int(labels[t]) == want, f"position {t}"
    im_end_positions = [t for t in range(len(ids)) if ids[t] == tok.eos_id]
    assert [bool(mask[t]) for t in im_end_positions] == [False, False, True, False, True]
    assert ds.num_targets == sum(expected_mask)


def test_sft_char_tokenizer_mask():
    ct = CharTokenizer.from_texts(["你好呀谢谢不客气", "systemuserassistant\n"])
    conv = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好呀"}]
    ds = SFTDataset([conv], ct, max_len=64)
    ids, mask = ds.token_targets(0)
    assert ct.decode(ids[mask].tolist()) == "你好呀<|im_end|>"
    assert ct.decode(ids[~mask].tolist()) == "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n\n"


def test_sft_overflow_and_bad_input(tok):
    long_conv = [{"role": "user", "content": "你好" * 100}, {"role": "assistant", "content": "好"}]
    with pytest.raises(ValueError, match=r"conversations\[1\].*max_len=64"):
        SFTDataset([CONV[1:3], long_conv], tok, max_len=64)
    ds = SFTDataset([CONV[1:3], long_conv], tok, max_len=64, overflow="drop")
    assert len(ds) == 1 and ds.source_index == [0]
    with pytest.warns(UserWarning, match="1 of 2 conversations keep no target token"):
        ds = SFTDataset([CONV[1:3], long_conv], tok, max_len=64, overflow="truncate")
    assert ds[1]["input_ids"].shape == (64,)
    assert (ds[1]["labels"] == IGNORE_INDEX).all()  # truncation cut the answer away (counted in the warning)
    with pytest.raises(ValueError, match="truncates every conversation before its answer"):
        SFTDataset([long_conv], tok, max_len=64, overflow="truncate")
    with pytest.raises(ValueError, match="no assistant"):
        SFTDataset([[{"role": "user", "content": "hi"}]], tok)
    with pytest.raises(ValueError, match=r"conversations\[0\].*role"):
        SFTDataset([[{"role": "bot", "content": "hi"}]], tok)
    with pytest.raises(ValueError, match="non-empty"):
        SFTDataset([], tok)


def test_sft_batches_pad_with_ignore(tok):
    convs = [CONV[1:3], CONV]
    ds = SFTDataset(convs, tok, max_len=128)
    batch = collate([ds[0], ds[1]])
    short = len(ds[0]["input_ids"])
    assert (batch["labels"][0, short:] == IGNORE_INDEX).all()
    assert (batch["attention_mask"][0, short:] == 0).all()
    assert (batch["input_ids"][0, short:] == tok.pad_id).all()
    padded = SFTDataset(convs, tok, max_len=128, pad_to_max=True)
    assert padded[0]["input_ids"].shape == (128,)


# ---- collate errors --------------------------------------------------------------------------
def test_collate_errors():
    a = {"input_ids": torch.tensor([1, 2, 3]), "labels": torch.tensor([2, 3, 4])}
    with pytest.raises(ValueError, match="non-empty"):
        collate([])
    with pytest.raises(ValueError, match="keys"):
        collate([a, {"input_ids": torch.tensor([1])}])
    with pytest.raises(ValueError, match="pad_to=2"):
        collate([a], pad_to=2)
    with pytest.raises(ValueError, match="length"):
        collate([{"input_ids": torch.tensor([1, 2]), "labels": torch.tensor([1])}])
    assert collate([a], pad_to=5)["labels"][0].tolist() == [2, 3, 4, IGNORE_INDEX, IGNORE_INDEX]


def test_packed_from_token_ids():
    ids = torch.arange(3, 3 + 21)
    ds = PackedDataset.from_token_ids(ids, block_size=5)
    assert len(ds) == 4
    assert ds[1]["input_ids"].tolist() == list(range(8, 13))
    assert ds[1]["labels"].tolist() == list(range(9, 14))
    with pytest.raises(ValueError, match="1-D integer"):
        PackedDataset.from_token_ids(ids.float(), block_size=5)


def test_packed_splits_fits_a_char_tokenizer_and_splits_by_document():
    from course_lib.corpus import load_corpus, train_val_split
    from course_lib.data import packed_splits

    tok, train, val = packed_splits("kjv", block_size=32, max_chars=50_000, val_fraction=0.1, seed=3)
    docs = load_corpus("kjv", max_chars=50_000)
    train_docs, val_docs = train_val_split(docs, val_fraction=0.1, seed=3)
    assert set("".join(docs)) <= set(tok.decode(list(range(tok.vocab_size))))  # every character covered
    assert len(train) == len(PackedDataset(train_docs, tok, block_size=32))
    assert len(val) == len(PackedDataset(val_docs, tok, block_size=32))
    assert torch.equal(val[0]["input_ids"], PackedDataset(val_docs, tok, block_size=32)[0]["input_ids"])
