"""lab.decoding: n-gram statistics against hand counts, decoding strategies against the library's
own decoders called directly, hop accuracy against the generator's ground-truth path."""
import pytest
import torch

from course_lib import ModelConfig, Transformer, generate
from course_lib.lab.decoding import accuracy_by_hops, decode, distinct_n, ngrams, repeated_ngram_fraction
from course_lib.lab.synthetic import counting, pointer_chasing


def test_repeated_ngram_fraction_hand_counted():
    assert repeated_ngram_fraction([1, 2, 3, 4, 5], 2) == 0.0
    # a b a b a b: bigrams ab ba ab ba ab -> the last three repeat
    assert repeated_ngram_fraction([1, 2, 1, 2, 1, 2], 2) == pytest.approx(3 / 5)
    assert repeated_ngram_fraction([7, 7, 7, 7], 1) == pytest.approx(3 / 4)
    assert repeated_ngram_fraction([1, 2], 4) == 0.0


def test_distinct_n_hand_counted():
    assert distinct_n([[1, 2, 3], [1, 2, 3]], 2) == pytest.approx(2 / 4)
    assert distinct_n([[1, 2, 3], [4, 5, 6]], 2) == 1.0
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 1) == pytest.approx(4 / 6)
    assert distinct_n([[1]], 2) == 0.0
    assert ngrams([1, 2, 3], 2) == [(1, 2), (2, 3)]


def test_bad_n_is_a_value_error():
    with pytest.raises(ValueError, match="n=0"):
        distinct_n([[1, 2]], 0)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return Transformer(ModelConfig.nano(vocab_size=32)).eval()


def test_decode_greedy_is_argmax_of_full_forward(small_model):
    prompt = [1, 5, 9]
    out = decode(small_model, prompt, 6, {"temperature": 0}, n=2)
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(6):   # independent reference: rerun the whole sequence, take the argmax
            seq.append(int(small_model(torch.tensor([seq])).logits[0, -1].argmax()))
    assert out == [seq[3:], seq[3:]]


def test_decode_sampling_is_seeded_and_beam_is_deterministic(small_model):
    a = decode(small_model, [1, 5], 8, {"temperature": 1.0, "top_p": 0.9}, n=4, seed=3)
    b = decode(small_model, [1, 5], 8, {"temperature": 1.0, "top_p": 0.9}, n=4, seed=3)
    assert a == b and len(a) == 4 and all(len(r) == 8 for r in a)
    beams = decode(small_model, [1, 5], 5, {"num_beams": 3}, n=2)
    assert beams[0] == beams[1] and len(beams[0]) == 5


class _Oracle(torch.nn.Module):
    """Reads a pointer-chasing prompt and emits the true next node: perfect by construction."""

    def __init__(self, vocab_size, wrong_from=None):
        super().__init__()
        self.config = ModelConfig.nano(vocab_size=vocab_size)
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.wrong_from = wrong_from

    def forward(self, ids, **kw):
        B, T = ids.shape
        logits = torch.zeros(B, T, self.config.vocab_size)
        for b in range(B):
            row = ids[b].tolist()
            sep = row.index(2)
            succ = {row[i]: row[i + 1] for i in range(1, sep, 2)}
            for t in range(sep + 2, T):       # logits at t predict token t+1: the successor of row[t]
                node = row[t] if t > sep + 2 else row[sep + 1]     # (at "h{k}": of the start node)
                step = t - sep - 1
                if self.wrong_from is not None and step >= self.wrong_from:
                    nxt = self.config.vocab_size - 1      # a hop token: never a node
                else:
                    nxt = succ[node]
                logits[b, t, nxt] = 10.0
        return type("Out", (), {"logits": logits})()


def test_accuracy_by_hops_path_task_against_ground_truth():
    task = pointer_chasing(20, n_nodes=5, hops=3, show_path=True, seed=1)
    assert accuracy_by_hops(_Oracle(task.vocab_size), task, 3) == {1: 1.0, 2: 1.0, 3: 1.0}
    # an oracle that errs from step 2 on: hop 1 right, the rest wrong
    acc = accuracy_by_hops(_Oracle(task.vocab_size, wrong_from=2), task, 3)
    assert acc[1] == 1.0 and acc[2] == 0.0 and acc[3] == 0.0


def test_accuracy_by_hops_direct_task_groups_by_hop_count():
    task = pointer_chasing(40, n_nodes=5, hops=[1, 2, 3], seed=2)
    model = _Oracle(task.vocab_size)

    class Direct(_Oracle):   # answers with the true k-hop node, read from the generator's info
        def forward(self, ids, **kw):
            logits = torch.zeros(*ids.shape, self.config.vocab_size)
            k = task.info["hops"][:len(ids)]
            truth = task.info["path"][torch.arange(len(ids)), k - 1]
            wrong = torch.where(k == 2, truth % (self.config.vocab_size - 3) + 3, truth)
            logits[torch.arange(len(ids)), -1, wrong] = 10.0
            return type("Out", (), {"logits": logits})()

    acc = accuracy_by_hops(Direct(task.vocab_size), task, 3)
    assert acc == {1: 1.0, 2: 0.0, 3: 1.0}
    with pytest.raises(ValueError, match="pointer_chasing"):
        accuracy_by_hops(model, counting(4), 2)
