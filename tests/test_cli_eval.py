"""``python -m course_lib eval``: the numbers against a plain cross-entropy recomputation, the held-out
documents against the training run's own split, greedy samples against an argmax loop, bad input."""
import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from adapters import reference_greedy_text
from course_lib import train_tokenizer
from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.cli import main
from course_lib.config import ModelConfig
from course_lib.corpus import _take_chars, load_corpus, train_val_split
from course_lib.model import Transformer
from course_lib.tokenizer import load_tokenizer

DOCS = ["今天天气很好，我们一起去公园散步。", "人民日报报道，今年粮食产量再创新高，农民的收入继续增加。"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A random nano model with a 300-token BPE, saved the way ``save_checkpoint`` does (no run metadata)."""
    folder = tmp_path_factory.mktemp("eval") / "ckpt"
    tok = train_tokenizer(DOCS * 20 + ["他说，科学技术是第一生产力。"] * 10, vocab_size=300)
    torch.manual_seed(0)
    save_checkpoint(Transformer(ModelConfig.preset("nano", vocab_size=tok.vocab_size)), folder)
    tok.save(folder)
    return folder


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "held_out.txt"
    p.write_text("\n\n".join(DOCS), encoding="utf-8")
    return p


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def reference(folder, docs, window=None):
    """Total NLL (nats) and target count of ``[BOS] doc [BOS] doc``, BOS never a target: one forward
    pass per window of ``window`` inputs (None: the whole stream in one pass), no batching, no padding."""
    model, tok = load_checkpoint(folder), load_tokenizer(folder)
    ids, is_text = [], []
    for d in docs:
        ids += [tok.bos_id] + tok.encode(d)
        is_text += [False] + [True] * (len(tok.encode(d)))
    ids, is_text = torch.tensor(ids), torch.tensor(is_text)
    window = window or len(ids) - 1
    assert window <= model.config.max_seq_len
    total, n = 0.0, 0
    for s in range(0, len(ids) - 1, window):
        y = ids[s + 1:s + 1 + window]
        with torch.no_grad():
            logits = model(ids[s:s + len(y)][None]).logits[0].float()
        nll = F.cross_entropy(logits, y, reduction="none")[is_text[s + 1:s + 1 + len(y)]]
        total, n = total + float(nll.sum()), n + len(nll)
    return total, n


def test_subprocess_eval_of_a_file_matches_plain_cross_entropy(ckpt, text_file, tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "course_lib", "eval", "--ckpt", str(ckpt), "--data", str(text_file),
                           "--json", str(out), "--device", "cpu", "--max-new-tokens", "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text(encoding="utf-8"))
    total, n = reference(ckpt, DOCS)
    n_chars = sum(map(len, DOCS))
    assert (r["tokens"], r["characters"], r["documents"]) == (n, n_chars, 2)
    assert r["loss"] == pytest.approx(total / n, rel=1e-5)
    assert r["perplexity"] == pytest.approx(math.exp(total / n), rel=1e-5)
    assert r["bits_per_char"] == pytest.approx(total / math.log(2) / n_chars, rel=1e-5)
    assert r["tokens_per_char"] == pytest.approx(n / n_chars)
    assert [s["prompt"] for s in r["samples"]] == ["今天", "中国", "我们"]     # Chinese text, Chinese prompts
    assert f"{r['bits_per_char']:.4f}" in proc.stdout and "perplexity" in proc.stdout


def test_short_windows_predict_each_token_once(ckpt, text_file, tmp_path, capsys):
    code, out, err = run(["eval", "--ckpt", ckpt, "--data", text_file, "--seq-len", 5, "--batch-size", 2,
                          "--json", "-", "--device", "cpu", "--max-new-tokens", 1], capsys)
    assert code == 0, err
    r = json.loads(out)                                  # --json -: only JSON on stdout, the table on stderr
    total, n = reference(ckpt, DOCS, window=5)
    assert r["tokens"] == n == reference(ckpt, DOCS)[1] and r["seq_len"] == 5 and "bits per char" in err
    assert r["loss"] == pytest.approx(total / n, rel=1e-5)
    assert r["loss"] != pytest.approx(reference(ckpt, DOCS)[0] / n, rel=1e-5)   # the context really was cut


def test_greedy_samples_equal_an_argmax_loop(ckpt, text_file, capsys):
    code, out, err = run(["eval", "--ckpt", ckpt, "--data", text_file, "--prompt", "今天", "--prompt", "人民",
                          "--max-new-tokens", 6, "--json", "-", "--device", "cpu"], capsys)
    assert code == 0, err
    model, tok = load_checkpoint(ckpt), load_tokenizer(ckpt)
    expected = [{"prompt": prompt, "continuation": reference_greedy_text(model, tok, [tok.bos_id] + tok.encode(prompt), 6)}
                for prompt in ("今天", "人民")]
    assert json.loads(out)["samples"] == expected


def test_corpus_evaluates_exactly_the_documents_the_run_held_out(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = run(["pretrain", "--preset", "nano", "--corpus", "reviews", "--max-chars", 6000, "--val-fraction",
                        0.1, "--seed", 3, "--vocab-size", 300, "--seq-len", 32, "--batch-size", 4, "--max-steps", 2,
                        "--out", run_dir, "--no-progress", "--log-every", 0, "--device", "cpu"], capsys)
    assert code == 0, err
    _, held_out = train_val_split(_take_chars(load_corpus("reviews"), 6000), val_fraction=0.1, seed=3)
    tok = load_tokenizer(run_dir / "step_2")
    results = []
    for extra in (["--corpus", "reviews"], []):           # named, and the checkpoint's own corpus by default
        code, out, err = run(["eval", "--ckpt", run_dir, *extra, "--json", "-", "--device", "cpu",
                              "--max-new-tokens", 1], capsys)
        assert code == 0, err
        results.append(json.loads(out))
    r = results[0]
    assert r == results[1]
    assert r["documents"] == len(held_out) >= 2
    assert r["characters"] == sum(map(len, held_out))
    assert r["tokens"] == sum(len(ids) for ids in tok.encode_batch(held_out))
    assert r["seq_len"] == 32 and "held out" in r["text"] and "seed 3" in r["text"]

    code, out, err = run(["eval", "--ckpt", run_dir, "--corpus", "sanguo", "--max-chars", 500, "--json", "-",
                          "--device", "cpu", "--max-new-tokens", 1], capsys)
    assert code == 0, err
    r = json.loads(out)
    _, other = train_val_split(load_corpus("sanguo"), val_fraction=0.02, seed=0)
    assert r["characters"] == 500 and "not trained on this corpus" in r["text"]
    assert r["documents"] == len(_take_chars(other, 500))


@pytest.mark.parametrize("case", ["missing checkpoint", "data and corpus", "empty file", "no corpus recorded",
                                  "json exists"])
def test_bad_input_is_one_error_line(case, ckpt, text_file, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n\n", encoding="utf-8")
    taken = tmp_path / "taken.json"
    taken.write_text("{}", encoding="utf-8")
    argv, needle = {
        "missing checkpoint": (["--ckpt", tmp_path / "no_such_run", "--data", text_file], "no_such_run"),
        "data and corpus": (["--ckpt", ckpt, "--data", text_file, "--corpus", "kjv"], "not both"),
        "empty file": (["--ckpt", ckpt, "--data", empty], "empty"),
        "no corpus recorded": (["--ckpt", ckpt], "--data FILE"),
        "json exists": (["--ckpt", ckpt, "--data", text_file, "--json", taken], "--overwrite"),
    }[case]
    code, out, err = run(["eval", *argv, "--device", "cpu"], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], err
    assert taken.read_text(encoding="utf-8") == "{}"
