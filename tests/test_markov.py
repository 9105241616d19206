"""MarkovSource (course_lib.lab.markov): its samples follow its table, its KL matches
torch.distributions.kl_divergence."""
import pytest
import torch

from course_lib import ModelConfig, Transformer
from course_lib.lab.markov import MarkovSource


def test_table_and_samples():
    src = MarkovSource(n_symbols=5, n_successors=2, seed=0)
    assert torch.allclose(src.table.sum(1), torch.ones(25))
    assert torch.all((src.table > 0).sum(1) == 2)
    seqs = src.sample(4000, 12, torch.Generator().manual_seed(1))
    assert not src.off_source(seqs).any()                                # the source never leaves itself
    # empirical transition frequencies for the most frequent context agree with the table
    a, b, c = seqs[:, :-2].reshape(-1), seqs[:, 1:-1].reshape(-1), seqs[:, 2:].reshape(-1)
    ctx = torch.bincount(a * 5 + b, minlength=25).argmax()
    sel = (a * 5 + b) == ctx
    freq = torch.bincount(c[sel], minlength=5).float() / sel.sum()
    assert (freq - src.table[ctx]).abs().max() < 4 * (0.25 / sel.sum().float()).sqrt()


def test_off_source_marks_impossible_steps():
    src = MarkovSource(n_symbols=6, n_successors=1, seed=2)
    seqs = src.sample(3, 8, torch.Generator().manual_seed(0))
    bad = seqs.clone()
    allowed = src.next_distribution_at(bad[0, 2], bad[0, 3]).argmax()
    bad[0, 4] = (allowed + 1) % 6
    assert src.off_source(bad)[0, 2] and src.off_source(bad).sum() >= 1


def test_kl_matches_torch_distributions():
    src = MarkovSource(n_symbols=7, n_successors=3, seed=4)
    torch.manual_seed(0)
    model = Transformer(ModelConfig.nano(vocab_size=7, max_seq_len=10)).eval()
    seqs = src.sample(16, 10, torch.Generator().manual_seed(5))
    got = src.kl_per_position(model, seqs)
    with torch.no_grad():
        logits = model(seqs[:, :-1]).logits[:, 1:].double()
    p = src.next_distribution(seqs).double()
    ref = torch.distributions.kl_divergence(torch.distributions.Categorical(probs=p),
                                            torch.distributions.Categorical(logits=logits))
    assert got.shape == (16, 8)
    assert torch.allclose(got.double(), ref, atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="n_successors"):
        MarkovSource(n_symbols=3, n_successors=4)
    with pytest.raises(ValueError, match="length"):
        MarkovSource().sample(2, 2)
