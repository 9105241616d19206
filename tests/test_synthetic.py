"""course_lib.lab.synthetic: seeded generators whose stored answers are actually right."""
import pytest
import torch

from course_lib.data import IGNORE_INDEX, collate
from course_lib.lab.synthetic import (BOS, SEP, TASKS, addition, agreement, answer_accuracy,
                                  associative_recall, copy_task, counting, entity_facts,
                                  entry_lookup, make_task, pointer_chasing, two_retrieval)


@pytest.mark.parametrize("name", list(TASKS))
def test_same_seed_same_data_and_common_invariants(name):
    a, b, c = make_task(name, 64, seed=3), make_task(name, 64, seed=3), make_task(name, 64, seed=4)
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.sequences, c.sequences)
    assert (a.sequences[:, 0] == BOS).all()
    assert int(a.sequences.max()) < a.vocab_size and int(a.sequences.min()) >= 0
    assert len(a.vocab) == a.vocab_size
    # labels: the next token exactly where the next token is an answer, -100 elsewhere
    assert a.input_ids.shape == a.labels.shape == (64, a.sequences.shape[1] - 1)
    scored = a.labels != IGNORE_INDEX
    assert torch.equal(scored, a.answer_mask[:, 1:])
    assert torch.equal(a.labels[scored], a.sequences[:, 1:][scored])
    assert torch.equal(a.answers.flatten(), a.sequences[a.answer_mask])
    batch = collate([a[0], a[1]])
    assert batch["input_ids"].shape == (2, a.seq_len)


def test_copy_answers_repeat_the_string():
    t = copy_task(100, length=6, n_symbols=5)
    L = 6
    assert torch.equal(t.sequences[:, 1:1 + L], t.answers)
    assert (t.sequences[:, 1 + L] == SEP).all()


def test_associative_recall_answer_is_the_value_after_the_key():
    t = associative_recall(200, n_pairs=6, n_keys=10, n_values=7)
    K = 10
    for seq, ans in zip(t.sequences.tolist(), t.answers[:, 0].tolist()):
        pairs = dict(zip(seq[1:13:2], seq[2:13:2]))
        assert len(pairs) == 6  # keys distinct
        assert all(3 <= k < 3 + K for k in pairs) and all(3 + K <= v < 3 + K + 7 for v in pairs.values())
        assert seq[13] == SEP and pairs[seq[14]] == ans


def test_two_retrieval_answers_both_keys():
    t = two_retrieval(200, n_pairs=5, n_keys=8, n_values=8)
    for seq in t.sequences.tolist():
        pairs = dict(zip(seq[1:11:2], seq[2:11:2]))
        ka, kb = seq[12], seq[13]
        assert ka != kb and seq[14] == SEP
        assert seq[15:] == [pairs[ka], pairs[kb]]


def test_entry_lookup_answer_is_the_value_of_the_entry_with_the_asked_key():
    K, V, P = 6, 5, 4
    t = entry_lookup(300, n_entries=P, n_keys=K, n_values=V)
    names = t.vocab
    for seq, ans in zip(t.sequences.tolist(), t.answers[:, 0].tolist()):
        # decode each entry from its printed name "k{a}:v{b}", independently of the id arithmetic
        entries = dict(names[e].split(":") for e in seq[1:1 + P])
        assert len(entries) == P                                   # keys distinct
        assert seq[1 + P] == SEP and names[seq[2 + P]] in entries
        assert names[ans] == entries[names[seq[2 + P]]]
        assert 3 <= seq[2 + P] < 3 + K and 3 + K <= ans < 3 + K + V  # disjoint vocabularies
    assert t.vocab_size == 3 + K + V + K * V and t.seq_len == P + 3
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("hops", [1, 3, [1, 2, 4]])
def test_pointer_chasing_follows_the_edges(hops):
    t = pointer_chasing(100, n_nodes=6, hops=hops, n_symbols=9)
    for seq, k in zip(t.sequences.tolist(), t.info["hops"].tolist()):
        edges = dict(zip(seq[1:13:2], seq[2:13:2]))
        assert len(edges) == 6 and sorted(edges) == sorted(edges.values())  # a permutation
        node = seq[14]
        assert seq[15] == t.vocab.index(f"h{k}")
        for _ in range(k):
            node = edges[node]
        assert seq[16] == node and node != seq[14]


def test_pointer_chasing_show_path():
    t = pointer_chasing(50, n_nodes=5, hops=3, show_path=True)
    assert t.answers.shape == (50, 3)
    for seq in t.sequences.tolist():
        edges = dict(zip(seq[1:11:2], seq[2:11:2]))
        assert seq[-3] == edges[seq[12]] and seq[-2] == edges[seq[-3]] and seq[-1] == edges[seq[-2]]
    with pytest.raises(ValueError, match="show_path"):
        pointer_chasing(5, hops=[1, 2], show_path=True)


@pytest.mark.parametrize("query", ["last", "first"])
def test_counting_counts(query):
    t = counting(300, length=12, n_symbols=5, max_count=6, query=query)
    S = 5
    counts = []
    for seq, c in zip(t.sequences.tolist(), t.info["count"].tolist()):
        if query == "last":
            x, q = seq[1:13], seq[14]
        else:
            q, x = seq[1], seq[3:15]
        assert x.count(q) == c and seq[-1] == 3 + S + c
        counts.append(c)
    assert set(counts) == set(range(7))  # counts are spread over 0..max_count


def test_agreement_verb_matches_subject_not_attractors():
    t = agreement(300, n_attractors=3, n_nouns=6, n_preps=3, p_mismatch=0.5)
    IS, ARE = t.vocab.index("is"), t.vocab.index("are")
    for seq, pl, mism in zip(t.sequences.tolist(), t.info["subject_plural"].tolist(),
                             t.info["n_mismatched"].tolist()):
        subject = t.vocab[seq[1]]
        assert subject.endswith("s") == pl
        assert seq[-1] == (ARE if pl else IS)
        attractors = [t.vocab[i] for i in seq[3:-2:2]]
        assert sum(a.endswith("s") != pl for a in attractors) == mism
    assert 0 < float(t.info["n_mismatched"].float().mean()) < 3
    none = agreement(50, n_attractors=2, p_mismatch=0.0)
    assert (none.info["n_mismatched"] == 0).all()


@pytest.mark.parametrize("reverse", [False, True])
def test_addition_answers_are_right(reverse):
    t = addition(500, n_digits=3, reverse=reverse)
    for seq in t.sequences.tolist():
        text = t.decode(seq).replace("<bos>", "").replace(" ", "")
        left, right = text.split("=")
        a, b = left.split("+")
        assert len(a) == len(b) == 3 and len(right) == 4
        assert int(right[::-1] if reverse else right) == int(a) + int(b)
    assert torch.equal(t.info["sum"], t.info["a"] + t.info["b"])


def test_entity_facts_use_one_world():
    train = entity_facts(None, n_entities=10, n_relations=3, kb_seed=7, seed=0)
    test = entity_facts(200, n_entities=10, n_relations=3, kb_seed=7, seed=1)
    assert len(train) == 30
    assert torch.equal(train.params["table"], test.params["table"])
    table = test.params["table"]
    for e, r, v in zip(test.info["entity"], test.info["relation"], test.answers[:, 0]):
        assert table[e, r] == v
    pairs = {(int(e), int(r)) for e, r in zip(train.info["entity"], train.info["relation"])}
    assert len(pairs) == 30
    other = entity_facts(None, n_entities=10, n_relations=3, kb_seed=8)
    assert not torch.equal(other.params["table"], table)


def test_answer_accuracy():
    t = addition(4, n_digits=2)
    V = t.vocab_size
    perfect = torch.nn.functional.one_hot(t.labels.clamp(min=0), V).float()
    assert answer_accuracy(perfect, t.labels) == {"token_accuracy": 1.0, "sequence_accuracy": 1.0}
    wrong = perfect.clone()
    pos = (t.labels[0] != IGNORE_INDEX).nonzero()[0, 0]
    wrong[0, pos] = torch.roll(wrong[0, pos], 1)
    acc = answer_accuracy(wrong, t.labels)
    assert acc["sequence_accuracy"] == 0.75 and acc["token_accuracy"] == 11 / 12


@pytest.mark.parametrize("call,match", [
    (lambda: copy_task(0), "n=0"),
    (lambda: associative_recall(5, n_pairs=20, n_keys=10), "n_pairs=20"),
    (lambda: entry_lookup(5, n_entries=9, n_keys=8), "n_entries=9"),
    (lambda: counting(5, query="middle"), "query"),
    (lambda: counting(5, length=4, max_count=5), "max_count=5"),
    (lambda: agreement(5, p_mismatch=1.5), "p_mismatch"),
    (lambda: addition(5, seed=-1), "seed"),
    (lambda: make_task("sorting", 5), "sorting"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
