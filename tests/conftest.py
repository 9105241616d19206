"""Small shared fixtures: nano configs and a seeded generator, so every test stays fast on a CPU."""
import pytest
import torch

from course_lib.config import ModelConfig


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The test models are tiny: one thread beats two (no fork/join per op), far more so on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state (tests never depend on each other's draws)."""
    torch.manual_seed(0)


@pytest.fixture
def nano_config() -> ModelConfig:
    """dim 64, 2 layers, 4 heads, 2 KV heads, vocab 256, max_seq_len 128."""
    return ModelConfig.nano()


def left_padded_batch(lengths, vocab_size=256, generator=None):
    """Random ids ``(B, max(lengths))`` left-padded with 0 and the matching 0/1 attention mask."""
    T = max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for b, n in enumerate(lengths):
        ids[b, T - n:] = torch.randint(1, vocab_size, (n,), generator=generator)
        mask[b, T - n:] = 1
    return ids, mask
