"""Token files (corpus.write_token_file / PackedDataset.from_token_file) against the in-memory path.

Reference: ``PackedDataset(texts, tokenizer)`` built in memory from the same documents, and the
tokenizer's own ``encode``; training equality is checked bit for bit on the weights.
"""
import json

import numpy as np
import pytest
import torch

from course_lib.config import ModelConfig
from course_lib.corpus import read_token_file, stream_jsonl_texts, write_token_file
from course_lib.data import PackedDataset, collate
from course_lib.model import Transformer
from course_lib.tokenizer import CharTokenizer, train_tokenizer

DOCS = [f"document {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + i % 5) for i in range(60)]


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(DOCS, vocab_size=300)


def test_file_holds_bos_doc_eos_per_document(tmp_path, bpe):
    header = write_token_file(iter(DOCS), bpe, tmp_path / "t.bin", batch_docs=7)     # a generator, odd batches
    expected = [t for d in DOCS for t in [bpe.bos_id, *bpe.encode(d), bpe.eos_id]]
    raw = np.fromfile(tmp_path / "t.bin", dtype=np.uint16)
    assert raw.tolist() == expected
    assert header["count"] == len(expected) == (tmp_path / "t.bin").stat().st_size // 2
    assert json.loads((tmp_path / "t.bin.json").read_text())["documents"] == len(DOCS)


def test_items_equal_the_in_memory_dataset(tmp_path, bpe):
    write_token_file(DOCS, bpe, tmp_path / "t.bin")
    mem = PackedDataset(DOCS, bpe, block_size=32)
    disk = PackedDataset.from_token_file(tmp_path / "t.bin", block_size=32, tokenizer=bpe)
    assert len(disk) == len(mem)
    for i in range(len(mem)):
        a, b = mem[i], disk[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ranks_read_disjoint_contiguous_slices(tmp_path, bpe):
    write_token_file(DOCS, bpe, tmp_path / "t.bin")
    full = PackedDataset(DOCS, bpe, block_size=16)
    W = 3
    parts = [PackedDataset.from_token_file(tmp_path / "t.bin", 16, rank=r, world_size=W) for r in range(W)]
    per = len(full) // W
    assert [len(p) for p in parts] == [per] * W
    for r, part in enumerate(parts):
        for j in range(per):
            assert torch.equal(part[j]["input_ids"], full[r * per + j]["input_ids"])
            assert torch.equal(part[j]["labels"], full[r * per + j]["labels"])
    with pytest.raises(ValueError, match="rank"):
        PackedDataset.from_token_file(tmp_path / "t.bin", 16, rank=3, world_size=3)


def _train(dataset, steps=6, seed=0):
    torch.manual_seed(seed)
    model = Transformer(ModelConfig.nano(vocab_size=300, max_seq_len=32))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    for s in range(steps):
        batch = collate([dataset[int(i)] for i in order[4 * s:4 * s + 4]])
        loss = model(batch["input_ids"], labels=batch["labels"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.state_dict()


def test_training_from_the_file_is_bit_identical(tmp_path, bpe):
    write_token_file(DOCS, bpe, tmp_path / "t.bin")
    a = _train(PackedDataset(DOCS, bpe, block_size=32))
    b = _train(PackedDataset.from_token_file(tmp_path / "t.bin", block_size=32))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stream_jsonl_and_checks(tmp_path, bpe):
    src = tmp_path / "p.jsonl"
    src.write_text("\n".join(json.dumps({"text": d}, ensure_ascii=False) for d in DOCS[:5]) + "\n\n")
    assert list(stream_jsonl_texts(src)) == DOCS[:5]
    write_token_file(stream_jsonl_texts(src), bpe, tmp_path / "s.bin")
    tokens, header = read_token_file(tmp_path / "s.bin", bpe)
    assert isinstance(tokens, np.memmap) and header["documents"] == 5
    other = CharTokenizer.from_texts(DOCS)
    with pytest.raises(ValueError, match="tokenizer_sha256"):
        read_token_file(tmp_path / "s.bin", other)
    with pytest.raises(FileNotFoundError, match="write_token_file"):
        read_token_file(tmp_path / "missing.bin")
