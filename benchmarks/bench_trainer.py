"""Trainer speed: is data loading ever the bottleneck, and what does the Trainer cost per step?

    python benchmarks/bench_trainer.py            # about 2-3 minutes on a 2-core CPU
    python benchmarks/bench_trainer.py --quick    # a smoke run

Prints a markdown table:
  (a) tokens/s the data pipeline delivers (``bench_data.data_tokens_per_second``: shuffled packed
      dataset + collate) vs tokens/s one training step of the 26M preset consumes (forward +
      backward + AdamW, float32, batch 4 x 256). Goal: data >= 20x faster.
  (b) seconds per optimizer step of ``Trainer.fit`` vs a bare hand-written loop doing the same work
      (same tiny model, samples, AdamW groups, accumulation over 2 micro-batches normalised by the
      window's token count, clipping, learning-rate schedule, loss read back every step), run
      interleaved so a busy machine hits both alike. Goal: overhead <= 10%.
  (c) on CUDA only: ``Trainer`` tokens/s and MFU at the 26M preset with bf16 autocast + torch.compile.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import machine_summary, markdown_table, peak_flops, timed  # noqa: E402

from course_lib.config import ModelConfig  # noqa: E402
from course_lib.data import PackedDataset, collate  # noqa: E402
from course_lib.device import set_threads, synchronize  # noqa: E402
from course_lib.model import Transformer  # noqa: E402
from course_lib.train import TrainConfig, Trainer, param_groups  # noqa: E402


# ---------------------------------------------------------------------------------------- (a)
def train_step_tokens_per_second(config: ModelConfig, batch: int, seq: int, repeats: int, device) -> float:
    """Tokens/s of one forward + backward + AdamW step on random ids (median of ``repeats``)."""
    torch.manual_seed(0)
    model = Transformer(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, seq + 1), device=device)
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        loss = model(x, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()                                  # warm-up
    times = [timed(step, device) for _ in range(repeats)]
    return batch * seq / statistics.median(times)


def data_vs_step(args, device) -> list:
    from bench_data import build_dataset, data_tokens_per_second

    ds = build_dataset("packed", max_chars=args.data_chars, seq_len=256)
    data_tps = data_tokens_per_second(batch_size=4, seq_len=256, n_batches=args.data_batches, dataset=ds)
    step_tps = train_step_tokens_per_second(ModelConfig.minimind_26m(), 4, 256, args.repeats, device)
    ratio = data_tps / step_tps
    return [{"benchmark": "data pipeline vs 26M train step (batch 4 x 256, fp32)",
             "measured": f"data {data_tps:,.0f} tok/s; step {step_tps:,.0f} tok/s",
             "ratio": f"{ratio:,.0f}x", "goal": ">= 20x", "ok": "yes" if ratio >= 20 else "NO"}]


# ---------------------------------------------------------------------------------------- (b)
def bare_loop(model, dataset, steps: int, start_step: int, cfg: TrainConfig, perm: list):
    """The hand-written reference: what the Trainer does for one step, without its machinery."""
    groups = param_groups(model, cfg.weight_decay)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]
    if not hasattr(model, "_bare_opt"):
        model._bare_opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    opt = model._bare_opt
    B, A = cfg.batch_size, cfg.grad_accum_steps
    for s in range(start_step, start_step + steps):
        base = s * B * A
        window = [collate([dataset[perm[(base + m * B + i) % len(perm)]] for i in range(B)]) for m in range(A)]
        n_tokens = sum(int((b["labels"] != -100).sum()) for b in window)
        total = 0.0
        for b in window:
            loss = model(b["input_ids"], labels=b["labels"], loss_reduction="sum").loss / n_tokens
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lr = cfg.lr_at(s)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(total)                        # the loss is read back every step, as the Trainer does


def trainer_overhead(args, device) -> list:
    from course_lib.corpus import load_corpus
    from course_lib.tokenizer import train_tokenizer

    docs = load_corpus(max_chars=args.data_chars)
    tok = train_tokenizer(docs, vocab_size=6400)
    ds = PackedDataset(docs, tok, block_size=args.tiny_seq)
    cfg = TrainConfig(batch_size=args.tiny_batch, grad_accum_steps=2, max_steps=10**6, lr=1e-3, warmup_steps=0,
                      device=str(device), dtype="float32", progress=False, log_every=0)
    torch.manual_seed(0)
    m_trainer, m_bare = Transformer(ModelConfig.tiny()), Transformer(ModelConfig.tiny())
    m_bare.load_state_dict(m_trainer.state_dict())
    m_bare.to(device)
    trainer = Trainer(m_trainer, ds, cfg)
    perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).tolist()
    n = args.overhead_steps
    state = {"bare_step": 0}

    def run_trainer():
        trainer.config.max_steps = trainer.step + n
        trainer.fit()

    def run_bare():
        bare_loop(m_bare, ds, n, state["bare_step"], cfg, perm)
        state["bare_step"] += n

    run_trainer(), run_bare()               # warm-up
    t_tr, t_bare = [], []
    for r in range(args.overhead_repeats):  # interleaved A B B A ...
        pair = [("t", run_trainer), ("b", run_bare)]
        for name, fn in (pair if r % 2 == 0 else pair[::-1]):
            (t_tr if name == "t" else t_bare).append(timed(fn, device) / n)
    tr, bare = statistics.median(t_tr), statistics.median(t_bare)
    overhead = tr / bare - 1
    tokens = args.tiny_batch * 2 * args.tiny_seq
    return [{"benchmark": f"Trainer vs bare loop, tiny preset, {args.tiny_batch} x {args.tiny_seq} x accum 2",
             "measured": f"Trainer {tr * 1e3:.1f} ms/step ({tokens / tr:,.0f} tok/s); bare {bare * 1e3:.1f} ms/step "
                         f"(runs: {', '.join(f'{x * 1e3:.0f}' for x in t_tr)} vs {', '.join(f'{x * 1e3:.0f}' for x in t_bare)})",
             "ratio": f"{overhead:+.1%} overhead", "goal": "<= +10%", "ok": "yes" if overhead <= 0.10 else "NO"}]


# ---------------------------------------------------------------------------------------- (c)
def gpu_trainer(args, device) -> list:
    if device.type != "cuda":
        return [{"benchmark": "Trainer on GPU, 26M bf16 + compile", "measured": "skipped: no CUDA device"}]
    torch.backends.cuda.matmul.allow_tf32 = True
    config = ModelConfig.minimind_26m(max_seq_len=args.gpu_seq)
    B, T = args.gpu_batch, args.gpu_seq
    g = torch.Generator().manual_seed(0)
    items = []
    for _ in range(B * 8):
        ids = torch.randint(0, config.vocab_size, (T + 1,), generator=g)
        items.append({"input_ids": ids[:-1], "labels": ids[1:], "attention_mask": torch.ones(T, dtype=torch.long)})
    torch.manual_seed(0)
    model = Transformer(config)
    trainer = Trainer(model, items, TrainConfig(batch_size=B, max_steps=5, dtype="bfloat16", compile=True,
                                                device="cuda", progress=False, log_every=0))
    trainer.fit()                           # compile + warm-up
    n = args.gpu_steps
    trainer.config.max_steps = trainer.step + n
    synchronize(device)
    t0 = time.perf_counter()
    trainer.fit()
    synchronize(device)
    dt = (time.perf_counter() - t0) / n
    n_matmul = model.num_parameters(exclude_embeddings=True) + config.vocab_size * config.dim
    flops_per_token = 6 * n_matmul + 12 * config.n_layers * config.n_heads * config.head_dim * T
    tps = B * T / dt
    peak = peak_flops(device, "bf16")
    mfu = flops_per_token * tps / peak if peak else float("nan")
    return [{"benchmark": f"Trainer on GPU, 26M bf16 + compile, {B} x {T}",
             "measured": f"{tps:,.0f} tok/s, {dt * 1e3:.1f} ms/step", "ratio": f"MFU {mfu:.1%}",
             "goal": "(report)", "ok": ""}]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke run)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data-chars", type=int, default=500_000)
    p.add_argument("--data-batches", type=int, default=500)
    p.add_argument("--tiny-batch", type=int, default=8)
    p.add_argument("--tiny-seq", type=int, default=128)
    p.add_argument("--overhead-steps", type=int, default=10)
    p.add_argument("--overhead-repeats", type=int, default=6)
    p.add_argument("--gpu-batch", type=int, default=32)
    p.add_argument("--gpu-seq", type=int, default=512)
    p.add_argument("--gpu-steps", type=int, default=20)
    args = p.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    if args.quick:
        args.repeats, args.data_batches, args.overhead_steps, args.overhead_repeats = 2, 100, 4, 2
        args.data_chars = 200_000
    from course_lib.device import pick_device
    device = pick_device(None if args.device == "auto" else args.device)
    rows = []
    for name, fn in (("data vs step", data_vs_step), ("trainer overhead", trainer_overhead), ("gpu", gpu_trainer)):
        print(f">> {name} ...", file=sys.stderr, flush=True)
        rows += fn(args, device)
    print(machine_summary(device))
    print(markdown_table(rows, ["benchmark", "measured", "ratio", "goal", "ok"]))


if __name__ == "__main__":
    main()
