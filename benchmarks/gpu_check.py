"""One bounded run that measures what matters on a GPU (or, with ``--device cpu --quick``, checks it runs).

    python benchmarks/gpu_check.py                      # CUDA: about 8 minutes, writes benchmarks/results/
    python benchmarks/gpu_check.py --device cpu --quick # every code path on the CPU in a minute or two
    make gpu-check

Prints one markdown table (and writes it to ``--out``, default ``benchmarks/results/gpu_check_<device>.md``):

- **train**: the ``minimind_26m`` training step (forward + backward + fused AdamW) under bf16 autocast
  and ``torch.compile`` at seq 512: tokens/s and MFU against the detected GPU's peak
  (``common.PEAK_FLOPS``; unknown GPU: "n/a"), beside ``transformers``' Llama on the same weights.
- **bandwidth**: the machine's memory bandwidth from a large tensor copy (read + write bytes / s).
- **decode**: batch-1 greedy decode tokens/s: ``generate`` (eager), ``StaticDecoder`` compiled with
  ``mode="reduce-overhead"`` (CUDA graphs over the preallocated cache, the gpt-fast approach) and
  ``transformers`` ``generate``; each as a fraction of the bandwidth bound
  ``bandwidth / (weight bytes + KV-cache bytes at the mean length)``; bf16 weights beside fp32.
- **batch**: decode tokens/s against batch size and the prefill/decode throughput ratio.
- **notebooks**: the full budget (``COURSE_BUDGET=full``) of a list of notebooks, each under a
  timeout, stopping when the time budget is spent.

Every section catches its own failure and reports it as a row, so one broken part never hides the
others. Sizes shrink under ``--quick``; the code paths are the same. On the CPU, ``--quick`` compiles
with ``backend="eager"`` (Dynamo traces the same code; inductor's C++ build would take minutes).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_model import build_ours, hf_copy, train_step_fn  # noqa: E402
from common import interleaved_times, machine_summary, markdown_table, median, peak_flops, timed  # noqa: E402

from course_lib.config import ModelConfig  # noqa: E402
from course_lib.device import pick_device, set_threads  # noqa: E402
from course_lib.kv_cache import StaticDecoder  # noqa: E402
from course_lib.sample import generate  # noqa: E402

NOTEBOOKS = ["18_causal_mask", "19_grad_accumulation", "16_layernorm_placement", "17_ffn_moe",
             "20_schedules_clipping", "14_length_extrapolation"]
COLUMNS = ["figure", "ours", "transformers", "ratio", "goal", "met", "notes"]


def _met(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("met" if ok else "not met")


def _compile(fn, args, mode: Optional[str] = None):
    """``torch.compile`` with the run's backend (inductor, or eager for CPU smoke runs)."""
    if args.backend == "inductor":
        return torch.compile(fn, mode=mode)
    return torch.compile(fn, backend=args.backend)


def flops_per_token(model, config: ModelConfig, seq: int) -> float:
    """Training FLOPs per token, PaLM/nanoGPT convention: ``6 N + 12 L H d T`` (N: matmul parameters)."""
    n_matmul = model.num_parameters(exclude_embeddings=True) + config.vocab_size * config.dim
    return 6 * n_matmul + 12 * config.n_layers * config.n_heads * config.head_dim * seq


# ------------------------------------------------------------------------------------------ train
def section_train(args, device) -> List[Dict]:
    config = ModelConfig.minimind_26m(max_seq_len=max(512, args.seq))
    ours = build_ours(config, device)
    hf = hf_copy(ours, device)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)
    steps, notes = {}, []
    for name, model in (("ours", ours), ("hf", hf)):
        model.train()
        if name == "ours":
            model.check_inputs = False                                    # no host sync per step
        fused = device.type == "cuda" or args.backend == "inductor"      # fused AdamW: CUDA (and CPU, torch >= 2.4)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
        step = train_step_fn(_compile(model, args), ids, name == "hf", device, torch.bfloat16, opt)
        t0 = time.perf_counter()
        for _ in range(2):
            step()                                                        # compile + warm-up
        notes.append(f"{name} compile+warm-up {time.perf_counter() - t0:.0f} s")
        steps[name] = step
    times = interleaved_times(steps, repeats=args.repeats, warmup=0, device=device)
    tokens = args.batch * args.seq
    tps = {k: tokens / median(v) for k, v in times.items()}
    fpt = flops_per_token(ours, config, args.seq)
    peak = peak_flops(device, "bf16")
    mfu = {k: fpt * v / peak for k, v in tps.items()} if peak else None
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return [{"figure": f"train step bf16 autocast + compile + fused AdamW, {args.batch}x{args.seq}",
             "ours": f"{tps['ours']:,.0f} tok/s, MFU {mfu['ours']:.1%}" if mfu else f"{tps['ours']:,.0f} tok/s, MFU n/a",
             "transformers": f"{tps['hf']:,.0f} tok/s" + (f", MFU {mfu['hf']:.1%}" if mfu else ""),
             "ratio": f"{tps['ours'] / tps['hf']:.2f}x", "goal": "MFU >= 35%",
             "met": _met(mfu["ours"] >= 0.35 if mfu else None),
             "notes": (f"{fpt / 1e6:.1f} MFLOP/token; peak {peak / 1e12:.0f} TFLOP/s ({where})" if peak
                       else f"peak FLOP/s unknown for {where}") + "; " + "; ".join(notes)}]


# -------------------------------------------------------------------------------------- bandwidth
def memory_bandwidth(device, nbytes: int, repeats: int = 5) -> float:
    """Bytes/s of ``dst.copy_(src)`` on ``nbytes``-sized float32 tensors: (read + write) / median time."""
    n = nbytes // 4
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)                                                         # touch the pages first
    t = median([timed(lambda: dst.copy_(src), device) for _ in range(repeats)])
    return 2 * n * 4 / t


def model_bytes(model) -> int:
    """Bytes of every distinct parameter (a tied head counts once: it is read once per token)."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
    return total


def kv_bytes(config: ModelConfig, tokens: float, element_size: int, batch: int = 1) -> float:
    return 2 * config.n_layers * config.n_kv_heads * config.head_dim * tokens * element_size * batch


# ----------------------------------------------------------------------------------------- decode
def section_decode(args, device, bandwidth: float) -> List[Dict]:
    config = ModelConfig.minimind_26m()
    ours = build_ours(config, device).eval()
    hf = hf_copy(ours, device).eval()
    n, P = args.new_tokens, args.prompt
    prompt = torch.randint(0, config.vocab_size, (1, P), generator=torch.Generator().manual_seed(1)).to(device)
    runs: Dict[str, Callable] = {
        "eager": lambda: generate(ours, prompt, n, temperature=0),
        "hf": lambda: hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                  max_new_tokens=n, min_new_tokens=0, use_cache=True)}
    rows, ref = [], generate(ours, prompt, n, temperature=0, return_logits=True)
    t0 = time.perf_counter()
    compiled = StaticDecoder(ours, 1, P + n, compile=True, mode="reduce-overhead", backend=args.backend)
    ids, logits = compiled.generate(prompt, n)                              # compiles here
    compile_s = time.perf_counter() - t0
    same = torch.equal(ids, ref[0])
    diff = float((logits - ref[1]).abs().max())
    runs["compiled"] = lambda: compiled.generate(prompt, n)
    src = torch.ones(args.bandwidth_bytes // 4, device=device)
    dst = torch.empty_like(src)
    runs["copy"] = lambda: dst.copy_(src)          # bandwidth interleaved with decode: same load on both
    times = interleaved_times(runs, repeats=args.repeats, warmup=1, device=device)
    bandwidth = 2 * src.numel() * 4 / median(times.pop("copy"))
    del src, dst
    tps = {k: n / median(v) for k, v in times.items()}
    per_token = model_bytes(ours) + kv_bytes(config, P + n / 2, 4)
    bound = bandwidth / per_token
    gpu = device.type == "cuda"
    best = max(tps["eager"], tps["compiled"])
    rows.append({"figure": f"decode batch 1, fp32, prompt {P}, {n} new tokens: eager generate",
                 "ours": f"{tps['eager']:,.0f} tok/s ({tps['eager'] / bound:.2f} of bound)",
                 "transformers": f"{tps['hf']:,.0f} tok/s ({tps['hf'] / bound:.2f} of bound)",
                 "ratio": f"{tps['eager'] / tps['hf']:.2f}x", "goal": ">= 0.8 of bound (CPU fp32)",
                 "met": _met(tps["eager"] / bound >= 0.8),
                 "notes": f"bound = {bandwidth / 1e9:.1f} GB/s (copy timed interleaved with the decodes) / "
                          f"{per_token / 1e6:.1f} MB per token = {bound:,.0f} tok/s"})
    rows.append({"figure": "decode batch 1, fp32: compiled static-cache step (reduce-overhead)",
                 "ours": f"{tps['compiled']:,.0f} tok/s ({tps['compiled'] / bound:.2f} of bound)",
                 "transformers": f"{tps['hf']:,.0f} tok/s",
                 "ratio": f"{tps['compiled'] / tps['hf']:.2f}x",
                 "goal": ">= 10k tok/s and >= 5x transformers" if gpu else "faster than eager?",
                 "met": _met(tps["compiled"] >= 1e4 and tps["compiled"] >= 5 * tps["hf"]) if gpu
                 else ("yes: compile helps" if tps["compiled"] > tps["eager"] else "no: keep eager"),
                 "notes": f"backend {args.backend}, compile {compile_s:.0f} s; {tps['compiled'] / tps['eager']:.2f}x "
                          f"eager; same tokens {same}, max |logit diff| {diff:.1e}; best {best:,.0f} tok/s"})
    rows.append(_bf16_row(args, device, ours, prompt, ref, bandwidth, tps["eager"]))
    return rows


def _bf16_row(args, device, ours, prompt, ref, bandwidth: float, fp32_tps: float) -> Dict:
    """The same eager decode with bf16 weights (and cache): speed and agreement with fp32."""
    import copy

    n, config = args.new_tokens, ours.config
    half = copy.deepcopy(ours).to(torch.bfloat16).eval()
    ids, logits = generate(half, prompt, n, temperature=0, return_logits=True)
    agree = int((ids[0, prompt.shape[1]:] == ref[0][0, prompt.shape[1]:]).long().cumprod(0).sum())
    first_diff = float((logits[:, 0] - ref[1][:, 0]).abs().max())
    t = median(interleaved_times({"bf16": lambda: generate(half, prompt, n, temperature=0)},
                                 repeats=args.repeats, warmup=1, device=device)["bf16"])
    bound = bandwidth / (model_bytes(half) + kv_bytes(config, prompt.shape[1] + n / 2, 2))
    return {"figure": "decode batch 1, bf16 weights + cache, eager generate",
            "ours": f"{n / t:,.0f} tok/s ({n / t / bound:.2f} of bf16 bound)", "transformers": "",
            "ratio": f"{n / t / fp32_tps:.2f}x fp32", "goal": "faster than fp32", "met": _met(n / t > fp32_tps),
            "notes": f"random weights: first {agree}/{n} greedy tokens equal fp32's (near-tied logits), first-step "
                     f"max |logit diff| {first_diff:.2e}; {_trained_agreement(device, n)}"}


def _trained_agreement(device, n: int) -> str:
    """bf16 vs fp32 greedy agreement on the shipped trained checkpoint (logits far from ties)."""
    import copy

    from course_lib.checkpoint import load_pretrained

    model, tok = load_pretrained(device=device)
    prompt = torch.tensor([tok.encode("人民日报")], device=device)
    ids, logits = generate(model, prompt, n, temperature=0, return_logits=True)
    ids16, logits16 = generate(copy.deepcopy(model).to(torch.bfloat16), prompt, n, temperature=0, return_logits=True)
    T = prompt.shape[1]
    same = int((ids[0, T:] == ids16[0, T:]).long().cumprod(0).sum())
    p, q = torch.softmax(logits[:, 0], -1), torch.softmax(logits16[:, 0].float(), -1)
    return f"trained checkpoint: first {same}/{n} tokens equal, first-step total variation {0.5 * float((p - q).abs().sum()):.3f}"


# ------------------------------------------------------------------------------------------ batch
def section_batch(args, device) -> List[Dict]:
    config = ModelConfig.minimind_26m()
    model = build_ours(config, device).eval()
    n, P, rows = args.batch_tokens, args.prompt, []
    base = None
    for B in args.batches:
        prompt = torch.randint(0, config.vocab_size, (B, P)).to(device)
        generate(model, prompt, 4, temperature=0)                             # warm this shape
        stats = [generate(model, prompt, n, temperature=0, return_stats=True)[1] for _ in range(args.repeats)]
        dec = median([s.decode_tokens_per_s for s in stats])
        pre = median([s.prefill_tokens_per_s for s in stats])
        base = base or dec
        rows.append({"figure": f"decode throughput, batch {B}, prompt {P}, {n} new tokens",
                     "ours": f"{dec:,.0f} tok/s", "ratio": f"{dec / base:.1f}x batch {args.batches[0]}",
                     "notes": f"prefill {pre:,.0f} tok/s = {pre / dec:.1f}x decode"})
    return rows


# -------------------------------------------------------------------------------------- notebooks
def section_notebooks(args, budget_s: float) -> List[Dict]:
    rows, spent = [], 0.0
    env = dict(os.environ, COURSE_BUDGET=args.nb_budget, MPLBACKEND="Agg")
    root = HERE.parent
    for name in args.notebooks:
        left = budget_s - spent
        if left < 10:
            rows.append({"figure": f"notebook {name} ({args.nb_budget})", "notes": "not run: time budget spent"})
            continue
        limit = min(args.nb_timeout, left)
        cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "-q",
               str(root / "notebooks" / f"{name}.ipynb")]
        t0 = time.perf_counter()
        try:
            out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=limit)
            status = "passed" if out.returncode == 0 else f"failed (rc {out.returncode}): " + \
                (out.stdout.strip().splitlines() or ["?"])[-1][:120]
        except subprocess.TimeoutExpired:
            status = f"timeout after {limit:.0f} s"
        took = time.perf_counter() - t0
        spent += took
        rows.append({"figure": f"notebook {name} ({args.nb_budget} budget)", "ours": f"{took:.0f} s",
                     "goal": f"<= {args.nb_timeout:.0f} s", "met": _met(status == "passed"), "notes": status})
    return rows


# ------------------------------------------------------------------------------------------- main
def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--quick", action="store_true", help="small sizes, every code path (CPU smoke run)")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole run")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--backend", default=None, help="torch.compile backend (default inductor; eager for CPU --quick)")
    p.add_argument("--only", default="train,bandwidth,decode,batch,notebooks")
    p.add_argument("--notebooks", default=",".join(NOTEBOOKS), help="comma-separated notebook names")
    p.add_argument("--nb-timeout", type=float, default=None, help="seconds per notebook")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="markdown file (default benchmarks/results/gpu_check_<device>.md)")
    args = p.parse_args(argv)
    cpu = args.device == "cpu"
    q = args.quick
    args.repeats = args.repeats or (2 if q else 5)
    args.backend = args.backend or ("eager" if q and cpu else "inductor")
    args.batch, args.seq = (1, 64) if q else (32, 512)
    args.prompt, args.new_tokens = (8, 24) if q else (16, 256)
    args.batches = [1, 4] if q else [1, 2, 4, 8, 16, 32, 64]
    args.batch_tokens = 8 if q else 64
    args.notebooks = [s for s in args.notebooks.split(",") if s][: 1 if q else None]
    args.nb_budget = "fast" if q else "full"
    args.nb_timeout = args.nb_timeout or (15.0 if q else 150.0)
    args.bandwidth_bytes = (64 if q else 256 if cpu else 1024) << 20     # far above any cache
    return args


def main(argv=None) -> str:
    args = parse(argv)
    if args.threads:
        set_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    started = time.perf_counter()
    wanted = args.only.split(",")
    rows: List[Dict] = []
    bandwidth = None
    out = Path(args.out) if args.out else HERE / "results" / f"gpu_check_{device.type}{'_quick' if args.quick else ''}.md"
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(done: bool) -> str:
        """The table so far, written after every section: a run killed by its timeout keeps its rows."""
        header = (f"{machine_summary(device)}; compile backend {args.backend}; repeats {args.repeats}; "
                  f"total {time.perf_counter() - started:.0f} s" + (" (--quick)" if args.quick else "")
                  + ("" if done else "; INCOMPLETE (the run stopped here)"))
        table = header + "\n\n" + markdown_table(rows, COLUMNS)
        out.write_text(table + "\n", encoding="utf-8")
        return table

    for name in ("train", "bandwidth", "decode", "batch"):
        if name not in wanted and not (name == "bandwidth" and "decode" in wanted):
            continue
        print(f">> {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            if name == "bandwidth":
                bandwidth = memory_bandwidth(device, args.bandwidth_bytes)
                rows.append({"figure": f"memory bandwidth ({args.bandwidth_bytes >> 20} MiB fp32 copy)",
                             "ours": f"{bandwidth / 1e9:.1f} GB/s", "notes": "(read + write bytes) / median time"})
            elif name == "decode":
                rows += section_decode(args, device, bandwidth)
            else:
                rows += {"train": section_train, "batch": section_batch}[name](args, device)
        except Exception as err:                                            # report, keep going
            rows.append({"figure": name, "met": "error", "notes": f"{type(err).__name__}: {err}"[:240]})
        print(f"   {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        write(False)
    if "notebooks" in wanted:
        left = args.budget_s - (time.perf_counter() - started) - 5
        rows += section_notebooks(args, left)
    table = write(True)
    print(table)
    return table

if __name__ == "__main__":
    main()
