"""benchmarks/gpu_check.py: its byte counts against independent references, and a CPU smoke run."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_check import kv_bytes, model_bytes  # noqa: E402

from course_lib.config import ModelConfig  # noqa: E402
from course_lib.model import Transformer  # noqa: E402


def test_model_bytes_counts_a_tied_head_once():
    config = ModelConfig.nano(tie_embeddings=True)
    model = Transformer(config)
    unique = {p.data_ptr(): p.numel() * 4 for p in model.state_dict().values() if p.is_floating_point()}
    assert model.lm_head.weight.data_ptr() == model.embed_tokens.weight.data_ptr()
    assert model_bytes(model) == sum(p.numel() * 4 for p in model.parameters())     # parameters() dedups ties
    assert model_bytes(model) <= sum(unique.values())


def test_kv_bytes_matches_a_filled_cache():
    config = ModelConfig.nano()
    model = Transformer(config).eval()
    cache = model.new_kv_cache(2, max_len=32)
    with torch.no_grad():
        model(torch.randint(0, config.vocab_size, (2, 11)), kv_cache=cache)
    assert kv_bytes(config, 11, 4, batch=2) == cache.nbytes()


@pytest.mark.slow
def test_cpu_quick_run_end_to_end(tmp_path):
    out = tmp_path / "check.md"
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--device", "cpu", "--quick", "--threads", "1",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = out.read_text()
    for figure in ("train step", "memory bandwidth", "decode batch 1, fp32", "compiled static-cache",
                   "bf16 weights", "decode throughput, batch 4", "notebook"):
        assert figure in table, figure
    assert "| error |" not in table, table
    assert "same tokens True" in table
