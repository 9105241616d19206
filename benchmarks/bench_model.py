"""Speed and memory of the model and the sampler, against transformers' Llama on the same weights.

Run as a script (not a test); it prints markdown tables::

    python benchmarks/bench_model.py                 # everything, CPU figures of the issue
    python benchmarks/bench_model.py --quick         # a smaller, faster pass (smoke test)
    python benchmarks/bench_model.py --only train,decode --repeats 7 --out results.md

Sections (``--only``):
  train   training step (forward + backward) at ``minimind_26m``, batch 4 x 256, float32:
          tokens/s ours vs ``LlamaForCausalLM`` with copied weights (goal >= 1.1x) and the peak
          memory of one step for both (each measured in a fresh process: RSS high-water mark).
  compiled  the same step with ``torch.compile``: ours compiled vs transformers eager, and both
          compiled (CPU compilation needs a C++ compiler and takes a minute or two per model).
  decode  batch-1 greedy decode with the KV cache, 256 new tokens: ``course_lib.generate`` vs
          ``LlamaForCausalLM.generate(do_sample=False)`` tokens/s (goal >= 1.5x).
  cache   our generate with vs without the KV cache at 1024 new tokens (goal >= 5x).
  kv      KV-cache bytes: measured vs ``2 * layers * kv_heads * head_dim * tokens * bytes``.
  gpu     (CUDA only) bf16 autocast + ``torch.compile`` training tokens/s and MFU at seq 512,
          and batch-1 decode tokens/s, ours vs transformers.

Fairness: same config, same weights (exported with ``export_hf_llama`` and loaded by
``from_pretrained``), same threads, warm-up first, the two sides interleaved, medians reported.
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
from typing import Dict, List, Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (human_bytes, interleaved_times, machine_summary, markdown_table, median,  # noqa: E402
                    peak_flops, peak_memory_bytes, peak_rss_bytes, peak_tensor_bytes_cpu, rss_bytes, spread,
                    timed)

from course_lib.config import ModelConfig  # noqa: E402
from course_lib.device import autocast, pick_device, set_threads  # noqa: E402
from course_lib.export import export_hf_llama  # noqa: E402
from course_lib.model import Transformer  # noqa: E402
from course_lib.sample import generate  # noqa: E402


# ------------------------------------------------------------------------------------- models
def build_ours(config: ModelConfig, device, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(config).to(device)


def hf_copy(model: Transformer, device, dtype=torch.float32):
    """``LlamaForCausalLM`` with our weights: exported and reloaded the way a user would."""
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        export_hf_llama(model, Path(tmp) / "hf")
        hf = transformers.LlamaForCausalLM.from_pretrained(Path(tmp) / "hf", dtype=dtype)
    hf.generation_config.eos_token_id = None        # random weights: never stop early
    hf.generation_config.pad_token_id = 0
    return hf.to(device)


def hf_fresh(config: ModelConfig, device):
    """A randomly initialised ``LlamaForCausalLM`` of the same shape (for memory runs only)."""
    import transformers

    from course_lib.export import hf_llama_config

    cfg = {k: v for k, v in hf_llama_config(config).items() if k not in ("architectures", "model_type", "torch_dtype")}
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)).to(device)


def train_step_fn(model, ids, hf: bool, device=None, dtype=torch.float32, optimizer=None):
    """One training step closure: forward with labels, backward (and the optimizer step if given)."""
    labels = ids

    def step():
        model.zero_grad(set_to_none=True)
        with autocast(device or ids.device, dtype):
            out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        if optimizer is not None:
            optimizer.step()
    # Both compute next-token loss over the same positions: ours takes aligned labels, transformers
    # shifts internally; passing ids as labels gives each the same amount of work.
    return step


# ------------------------------------------------------------------------------------- sections
def bench_train(args, device) -> List[Dict]:
    config = ModelConfig.minimind_26m()
    ours = build_ours(config, device)
    hf = hf_copy(ours, device)
    ours.train()
    hf.train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=g).to(device)
    with torch.no_grad():                             # same function: loss must agree
        ours_loss = float(ours(ids, labels=torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], 1)).loss)
        hf_loss = float(hf(input_ids=ids, labels=ids).loss)
    times = interleaved_times({"ours": train_step_fn(ours, ids, False), "hf": train_step_fn(hf, ids, True)},
                              repeats=args.repeats, warmup=1, device=device)
    tokens = args.batch * args.seq
    t_ours, t_hf = median(times["ours"]), median(times["hf"])
    mem, rss = {}, {}
    for which, model in (("ours", ours), ("hf", hf)):
        step = train_step_fn(model, ids, which == "hf")
        if device.type == "cpu":
            mem[which] = peak_tensor_bytes_cpu(step) or peak_memory_bytes(step, device)
            rss[which] = memory_in_child(which, args.batch, args.seq, args.threads) if args.rss else None
        else:
            mem[which] = peak_memory_bytes(step, device)
    del ours, hf
    if device.type == "cpu":
        how = "exact peak of live tensor bytes during one step (profiler allocator events)"
        if args.rss:
            how += (f"; process RSS high-water mark, fresh process each: {human_bytes(rss['ours'])} vs "
                    f"{human_bytes(rss['hf'])}")
    else:
        how = "torch.cuda.max_memory_allocated"
    return [
        {"benchmark": f"train step fwd+bwd, {args.batch}x{args.seq}, fp32", "ours": f"{tokens / t_ours:,.0f} tok/s",
         "transformers": f"{tokens / t_hf:,.0f} tok/s", "ratio": f"{t_hf / t_ours:.2f}x", "goal": ">= 1.1x",
         "notes": f"step {spread(times['ours'])} vs {spread(times['hf'])}; loss {ours_loss:.4f} vs {hf_loss:.4f}"},
        {"benchmark": "train step peak memory", "ours": human_bytes(mem["ours"]), "transformers": human_bytes(mem["hf"]),
         "ratio": f"{mem['hf'] / max(mem['ours'], 1):.2f}x less" if mem["ours"] <= mem["hf"]
         else f"{mem['ours'] / max(mem['hf'], 1):.2f}x more",
         "goal": "<= transformers",
         "notes": how},
    ]


def memory_in_child(which: str, batch: int, seq: int, threads: Optional[int]) -> int:
    """Peak memory of a training step measured in a fresh Python process (clean high-water mark)."""
    cmd = [sys.executable, __file__, "--child-memory", which, "--batch", str(batch), "--seq", str(seq)]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return int(json.loads(line)["peak_bytes"])
    raise RuntimeError(f"memory child for {which!r} failed:\n{out.stderr[-2000:]}")


def child_memory(which: str, batch: int, seq: int) -> None:
    """(In the child process) build one model, run two steps, print the step's peak RSS growth."""
    config = ModelConfig.minimind_26m()
    model = build_ours(config, "cpu") if which == "ours" else hf_fresh(config, "cpu")
    model.train()
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    step = train_step_fn(model, ids, which == "hf")
    import gc

    gc.collect()
    before, high_before = rss_bytes(), peak_rss_bytes()
    sampled = peak_memory_bytes(lambda: (step(), step()), "cpu")
    high_after = peak_rss_bytes()
    # ru_maxrss is exact but includes construction; it is the step's peak only if the step raised it.
    peak = high_after - before if high_after > high_before else sampled
    print(json.dumps({"peak_bytes": int(max(peak, sampled)), "sampled": int(sampled)}))


def bench_decode(args, device) -> List[Dict]:
    config = ModelConfig.minimind_26m()
    ours = build_ours(config, device).eval()
    hf = hf_copy(ours, device).eval()
    n = args.new_tokens
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, config.vocab_size, (1, args.prompt), generator=g).to(device)
    mask = torch.ones_like(prompt)

    def run_ours():
        return generate(ours, prompt, n, temperature=0, use_cache=True)

    def run_hf():
        with torch.inference_mode():
            return hf.generate(prompt, attention_mask=mask, do_sample=False, max_new_tokens=n, min_new_tokens=0,
                               use_cache=True)

    a, b = run_ours(), run_hf()
    same = int((a[0] == b[0]).long().cumprod(0).sum()) - args.prompt
    times = interleaved_times({"ours": run_ours, "hf": run_hf}, repeats=args.repeats, warmup=1, device=device)
    t_ours, t_hf = median(times["ours"]), median(times["hf"])
    _, stats = generate(ours, prompt, n, temperature=0, return_stats=True)
    return [{"benchmark": f"decode batch 1, prompt {args.prompt}, {n} new tokens, greedy, KV cache",
             "ours": f"{n / t_ours:,.1f} tok/s", "transformers": f"{n / t_hf:,.1f} tok/s",
             "ratio": f"{t_hf / t_ours:.2f}x", "goal": ">= 1.5x",
             "notes": f"same first {same}/{n} tokens; ours prefill {stats.prefill_tokens_per_s:,.0f} tok/s, "
                      f"decode {stats.decode_tokens_per_s:,.1f} tok/s"}]


def _uncached_estimate(model, prompt_len: int, n: int, vocab: int, device, points: int = 9) -> float:
    """Seconds ``generate(use_cache=False)`` needs for ``n`` tokens, from sampled step costs.

    Without a cache, step ``i`` is one forward over ``prompt_len + i`` tokens (plus an argmax), so
    the total is the sum of forward times over all lengths. We time the forward at ``points``
    lengths spread over the range and integrate the piecewise-linear fit (the forward time is a
    smooth, slightly super-linear function of length). Much cheaper than the real run, which at
    1024 tokens takes tens of minutes on 2 cores; ``--exact-uncached`` runs it instead.
    """
    lengths = sorted({int(round(prompt_len + i * (n - 1) / (points - 1))) for i in range(points)})
    ids = torch.randint(0, vocab, (1, lengths[-1]), device=device)
    cost = {}
    model.check_inputs = False                       # as inside generate()
    with torch.inference_mode():
        for L in lengths:
            model(ids[:, :L])                            # warm this shape
            cost[L] = median([timed(lambda: model(ids[:, :L]).logits[:, -1].argmax(-1), device) for _ in range(2)])
    model.check_inputs = True
    total = 0.0
    for a, b in zip(lengths, lengths[1:]):           # trapezoid over every integer length in [a, b)
        total += (b - a) * (cost[a] + cost[b]) / 2
    return total + cost[lengths[-1]]


def bench_cache(args, device) -> List[Dict]:
    n = args.cache_tokens
    config = ModelConfig.minimind_26m(max_seq_len=max(512, args.prompt + n))
    model = build_ours(config, device).eval()
    g = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, config.vocab_size, (1, args.prompt), generator=g).to(device)
    check = min(n, 64)                                  # the tokens must agree (checked on a short run)
    same = bool(torch.equal(generate(model, prompt, check, temperature=0),
                            generate(model, prompt, check, temperature=0, use_cache=False)))
    cached = [timed(lambda: generate(model, prompt, n, temperature=0), device) for _ in range(max(1, args.repeats // 2))]
    if args.exact_uncached:
        uncached = timed(lambda: generate(model, prompt, n, temperature=0, use_cache=False), device)
        how = "uncached run once in full"
    else:
        uncached = _uncached_estimate(model, args.prompt, n, config.vocab_size, device)
        how = "uncached time = sum of measured full-forward times over all lengths (9 sampled, interpolated)"
    return [{"benchmark": f"cached vs uncached generate, {n} new tokens (prompt {args.prompt})",
             "ours": f"{n / median(cached):,.1f} tok/s cached", "transformers": f"{n / uncached:,.2f} tok/s uncached",
             "ratio": f"{uncached / median(cached):.1f}x", "goal": ">= 5x",
             "notes": f"both columns are ours; {how}; identical tokens over {check} steps: {same}"}]


def bench_kv(args, device) -> List[Dict]:
    rows = []
    base = ModelConfig.minimind_26m()
    for kv_heads in (8, 4, 2, 1):
        config = base.replace(n_kv_heads=kv_heads)
        model = build_ours(config, device).eval()
        prompt = torch.randint(0, config.vocab_size, (1, args.prompt)).to(device)
        cache = model.new_kv_cache(1, max_len=args.prompt + 64)
        with torch.inference_mode():
            model(prompt, kv_cache=cache)
            for _ in range(63):
                model(prompt[:, :1], kv_cache=cache)
        elem = cache.keys[0].element_size()
        formula = 2 * config.n_layers * kv_heads * config.head_dim * cache.length * elem
        # Allocation measured from the outside: the tensor bytes the allocator hands out for a full
        # cache of batch x tokens (profiler allocator events on the CPU, max_memory_allocated on CUDA).
        batch, tokens = 4, 2048
        holder = []

        def allocate_and_fill():
            cache = model.new_kv_cache(batch, max_len=tokens)
            for t in cache.keys + cache.values:
                t.fill_(1.0)
            holder.append(cache)

        alloc = (peak_tensor_bytes_cpu(allocate_and_fill) if device.type == "cpu" else None) \
            or peak_memory_bytes(allocate_and_fill, device)
        alloc_formula = 2 * config.n_layers * kv_heads * config.head_dim * tokens * batch * elem
        rows.append({"benchmark": f"KV cache bytes, n_kv_heads={kv_heads}",
                     "ours": f"{cache.nbytes():,} B for {cache.length} tokens",
                     "transformers": f"formula {formula:,} B",
                     "ratio": "equal" if cache.nbytes() == formula else f"{cache.nbytes() / formula:.3f}",
                     "goal": "equal",
                     "notes": f"{human_bytes(formula / cache.length)}/token; a filled {batch}x{tokens} cache: "
                              f"allocated {human_bytes(alloc)} vs formula "
                              f"{human_bytes(alloc_formula)}"})
        del holder
    return rows


def bench_train_compiled(args, device) -> List[Dict]:
    """The same training step with ``torch.compile`` on both sides (and ours compiled vs theirs eager).

    Compilation fuses the element-wise work around the matrix products (norms, SwiGLU, RoPE, the
    loss); the matrix products themselves are the same for both libraries, so this row shows what
    each library gets from the compiler rather than a difference in arithmetic.
    """
    config = ModelConfig.minimind_26m()
    ours = build_ours(config, device)
    hf = hf_copy(ours, device)
    ours.train()
    hf.train()
    ours.check_inputs = False                 # the per-call id check is skipped under compile anyway
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=g).to(device)
    steps = {"ours eager": train_step_fn(ours, ids, False), "hf eager": train_step_fn(hf, ids, True)}
    failed = {}
    for name, model in (("ours compiled", ours), ("hf compiled", hf)):
        try:
            step = train_step_fn(torch.compile(model), ids, name.startswith("hf"))
            step()                                                   # compile once, outside the timing
            steps[name] = step
        except Exception as err:                                     # report, do not die
            failed[name] = f"{type(err).__name__}: {err}"[:160]
    times = interleaved_times(steps, repeats=args.repeats, warmup=1, device=device)
    med = {k: median(v) for k, v in times.items()}
    tokens = args.batch * args.seq
    rows = []
    if "ours compiled" in med:
        rows.append({"benchmark": f"train step, ours compiled vs transformers eager, {args.batch}x{args.seq}, fp32",
                     "ours": f"{tokens / med['ours compiled']:,.0f} tok/s",
                     "transformers": f"{tokens / med['hf eager']:,.0f} tok/s",
                     "ratio": f"{med['hf eager'] / med['ours compiled']:.2f}x", "goal": ">= 1.1x",
                     "notes": f"ours eager in the same run: {tokens / med['ours eager']:,.0f} tok/s"})
    if "ours compiled" in med and "hf compiled" in med:
        rows.append({"benchmark": "train step, both compiled", "ours": f"{tokens / med['ours compiled']:,.0f} tok/s",
                     "transformers": f"{tokens / med['hf compiled']:,.0f} tok/s",
                     "ratio": f"{med['hf compiled'] / med['ours compiled']:.2f}x", "goal": "",
                     "notes": "torch.compile (inductor) on both models"})
    for name, why in failed.items():
        rows.append({"benchmark": f"train step ({name})", "notes": f"failed: {why}"})
    return rows


def bench_gpu(args, device) -> List[Dict]:
    if not torch.cuda.is_available():
        return [{"benchmark": "GPU", "notes": "skipped: no CUDA device"}]
    device = torch.device("cuda")                    # this section is about the GPU whatever --device says
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    config = ModelConfig.minimind_26m(max_seq_len=max(512, args.gpu_seq))
    rows = []
    ours = build_ours(config, device)
    hf = hf_copy(ours, device)
    B, T = args.gpu_batch, args.gpu_seq
    ids = torch.randint(0, config.vocab_size, (B, T), device=device)
    # Matmul FLOPs per token (PaLM / nanoGPT convention): 6 N for the weights (N = non-embedding
    # parameters + the output head, which is a matmul even when tied) + 12 L H d T for attention.
    n_matmul = ours.num_parameters(exclude_embeddings=True) + config.vocab_size * config.dim
    flops_per_token = 6 * n_matmul + 12 * config.n_layers * config.n_heads * config.head_dim * T
    peak = peak_flops(device, "bf16")
    results = {}
    for name, model in (("ours", ours), ("hf", hf)):
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        try:
            compiled = torch.compile(model)
            step = train_step_fn(compiled, ids, name == "hf", device, torch.bfloat16, opt)
            for _ in range(3):
                step()                                           # compile + warm-up
            times = [timed(step, device) for _ in range(args.repeats * 2)]
            results[name] = median(times)
        except Exception as err:                                 # report, do not die
            results[name] = None
            rows.append({"benchmark": f"GPU train ({name})", "notes": f"failed: {type(err).__name__}: {err}"[:200]})
    tokens = B * T
    if results.get("ours"):
        tps = tokens / results["ours"]
        mfu = flops_per_token * tps / peak if peak else float("nan")
        hf_tps = tokens / results["hf"] if results.get("hf") else float("nan")
        rows.append({"benchmark": f"GPU train step bf16+compile, {B}x{T} (fwd+bwd+AdamW)",
                     "ours": f"{tps:,.0f} tok/s, MFU {mfu:.1%}", "transformers": f"{hf_tps:,.0f} tok/s",
                     "ratio": f"{tps / hf_tps:.2f}x" if results.get("hf") else "",
                     "goal": "MFU >= 35% (H100)",
                     "notes": f"{flops_per_token / 1e6:.1f} MFLOP/token; peak {peak / 1e12 if peak else float('nan'):.0f} "
                              f"TFLOP/s ({torch.cuda.get_device_name(device)}); peak mem "
                              f"{human_bytes(torch.cuda.max_memory_allocated(device))}"})
    # batch-1 decode on the GPU (Python overhead per step matters most here)
    ours.eval()
    hf.eval()
    prompt = torch.randint(0, config.vocab_size, (1, args.prompt), device=device)
    n = args.new_tokens
    times = interleaved_times({
        "ours": lambda: generate(ours, prompt, n, temperature=0),
        "hf": lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                  max_new_tokens=n, use_cache=True)}, repeats=args.repeats, warmup=1, device=device)
    rows.append({"benchmark": f"GPU decode batch 1, {n} new tokens, fp32", "ours": f"{n / median(times['ours']):,.0f} tok/s",
                 "transformers": f"{n / median(times['hf']):,.0f} tok/s",
                 "ratio": f"{median(times['hf']) / median(times['ours']):.2f}x", "goal": "", "notes": ""})
    return rows


SECTIONS = {"train": bench_train, "compiled": bench_train_compiled, "decode": bench_decode, "cache": bench_cache, "kv": bench_kv, "gpu": bench_gpu}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (a smoke run)")
    p.add_argument("--only", default=None,
                   help="comma-separated sections (default: train,decode,cache,kv, plus gpu when CUDA is present)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (median reported)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--prompt", type=int, default=16, help="prompt length for decode benchmarks")
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--cache-tokens", type=int, default=1024)
    p.add_argument("--gpu-batch", type=int, default=64)
    p.add_argument("--gpu-seq", type=int, default=512)
    p.add_argument("--device", default="cpu", help="cpu (the issue's figures), cuda, or auto")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--exact-uncached", action="store_true",
                   help="run the uncached 1024-token generation in full instead of estimating it (slow)")
    p.add_argument("--no-rss", dest="rss", action="store_false",
                   help="skip the fresh-process RSS measurement of the training step (saves two runs)")
    p.add_argument("--out", default=None, help="also write the markdown table to this file")
    p.add_argument("--child-memory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads:
        set_threads(args.threads)
    if args.child_memory:
        child_memory(args.child_memory, args.batch, args.seq)
        return
    if args.quick:
        args.repeats = args.repeats or 2
        args.seq = min(args.seq, 128)
        args.new_tokens = min(args.new_tokens, 64)
        args.cache_tokens = min(args.cache_tokens, 128)
        args.gpu_batch = min(args.gpu_batch, 16)
    args.repeats = args.repeats or 5
    device = pick_device(None if args.device == "auto" else args.device)
    default = "train,compiled,decode,cache,kv" + (",gpu" if torch.cuda.is_available() else "")
    wanted = [s.strip() for s in (args.only or default).split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        p.error(f"--only: unknown sections {unknown}; choose from {sorted(SECTIONS)}")
    rows: List[Dict] = []
    started = time.perf_counter()
    for name in wanted:
        print(f">> {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            section_rows = SECTIONS[name](args, device)
        except ImportError as err:
            section_rows = [{"benchmark": name, "notes": f"skipped: {err} (pip install transformers)"}]
        rows.extend(section_rows)
        print(f"   done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    header = (f"{machine_summary(device)}; repeats {args.repeats}; total {time.perf_counter() - started:.0f} s"
              + (" (--quick)" if args.quick else ""))
    table = header + "\n\n" + markdown_table(rows, ["benchmark", "ours", "transformers", "ratio", "goal", "notes"])
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
