"""Tokenizing a corpus to a token file: peak memory against the file's size, speed against the tokenizer's own.

    python benchmarks/bench_token_file.py [--mb 20] [--out FILE]

A pretraining jsonl of about ``--mb`` MB (the default corpus's documents, repeated) is tokenized
three ways, each in a fresh process so that its RSS high-water mark is its own:

- ``write_token_file(stream_jsonl_texts(...))``: streamed, batch-encoded, written as uint16;
- the in-memory path: ``PackedDataset(read_jsonl_pretrain(...))``;
- the tokenizer alone: ``encode_batch`` over the same batches (documents already in memory), the
  upper bound on speed.

Goals (issue 15): peak memory while writing <= 2x the output file + a constant; tokens/s within
1.5x of the tokenizer's own batch speed. Both ratios come from one run on one machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import human_bytes, markdown_table, peak_memory_bytes, peak_rss_bytes, rss_bytes  # noqa: E402

from course_lib.corpus import DEFAULT_CORPUS, load_corpus  # noqa: E402


def child(kind: str, jsonl: str, tok_dir: str, out: str) -> None:
    """(Fresh process) run one way of tokenizing; print JSON with seconds, tokens and RSS growth."""
    from course_lib.corpus import read_jsonl_pretrain, stream_jsonl_texts, write_token_file
    from course_lib.data import PackedDataset
    from course_lib.tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    tok.encode_batch(["warm up the tokenizer"])
    if kind == "encode":                                   # the tokenizer alone, documents in memory
        docs = list(stream_jsonl_texts(jsonl))
    def work():
        if kind == "write":
            return write_token_file(stream_jsonl_texts(jsonl), tok, out)["count"]
        if kind == "memory":
            return len(PackedDataset(read_jsonl_pretrain(jsonl), tok, block_size=256).tokens)
        return sum(sum(len(d) + 2 for d in tok.encode_batch(docs[i:i + 1024])) for i in range(0, len(docs), 1024))

    tokens = []
    base, high_before, t0 = rss_bytes(), peak_rss_bytes(), time.perf_counter()
    sampled = peak_memory_bytes(lambda: tokens.append(work()), "cpu")     # RSS sampled every 0.5 ms
    seconds, high_after = time.perf_counter() - t0, peak_rss_bytes()
    # ru_maxrss is exact but counts the imports before; it is this call's peak only if the call raised it
    growth = max(sampled, high_after - base) if high_after > high_before else sampled
    print(json.dumps({"seconds": seconds, "tokens": tokens[0], "peak_growth": growth}))


def run_child(kind: str, *paths: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", RAYON_NUM_THREADS=os.environ.get("RAYON_NUM_THREADS", "1"))
    out = subprocess.run([sys.executable, __file__, "--child", kind, *paths], capture_output=True, text=True, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {kind} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=20.0, help="size of the jsonl to tokenize (MB)")
    p.add_argument("--out", default=None)
    p.add_argument("--child", nargs=4, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child)
        return ""
    from course_lib.tokenizer import train_tokenizer

    docs = load_corpus(DEFAULT_CORPUS)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jsonl, tok_dir, out = tmp / "pretrain.jsonl", tmp / "tok", tmp / "tokens.bin"
        train_tokenizer(docs[:2000], vocab_size=6400).save(tok_dir)
        with open(jsonl, "w", encoding="utf-8") as f:
            while f.tell() < args.mb * 1e6:
                for d in docs:
                    f.write(json.dumps({"text": d}, ensure_ascii=False) + "\n")
        size_in = jsonl.stat().st_size
        res = {k: run_child(k, str(jsonl), str(tok_dir), str(out)) for k in ("encode", "write", "memory")}
        size_out = out.stat().st_size
    w, m, e = res["write"], res["memory"], res["encode"]
    tps = {k: v["tokens"] / v["seconds"] for k, v in res.items()}
    rows = [
        {"figure": "peak memory while writing the token file", "measured": human_bytes(w["peak_growth"]),
         "compared with": f"output file {human_bytes(size_out)}", "ratio": f"{w['peak_growth'] / size_out:.2f}x file",
         "goal": "<= 2x file + constant", "met": "met" if w["peak_growth"] <= 2 * size_out + 64 * 2**20 else "not met",
         "notes": f"{w['peak_growth'] / w['tokens']:.1f} B/token; constant allowance 64 MiB"},
        {"figure": "peak memory, in-memory PackedDataset (old path)", "measured": human_bytes(m["peak_growth"]),
         "compared with": f"output file {human_bytes(size_out)}", "ratio": f"{m['peak_growth'] / size_out:.2f}x file",
         "goal": "", "met": "", "notes": f"{m['peak_growth'] / m['tokens']:.1f} B/token"},
        {"figure": "tokens/s writing the token file", "measured": f"{tps['write']:,.0f} tok/s",
         "compared with": f"encode_batch alone {tps['encode']:,.0f} tok/s",
         "ratio": f"{tps['encode'] / tps['write']:.2f}x (encode / write)", "goal": "<= 1.5x",
         "met": "met" if tps["encode"] / tps["write"] <= 1.5 else "not met",
         "notes": f"in-memory path {tps['memory']:,.0f} tok/s; {w['tokens']:,} tokens from {size_in / 1e6:.1f} MB jsonl"},
    ]
    table = (f"bench_token_file: {size_in / 1e6:.1f} MB jsonl, each way in a fresh process\n\n"
             + markdown_table(rows, ["figure", "measured", "compared with", "ratio", "goal", "met", "notes"]))
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")
    return table


if __name__ == "__main__":
    main()
