"""``chat``: multi-turn history, --system, /clear, the commands, context overflow, Ctrl-C and bad input.

Replies are checked against greedy continuations computed here with ``course_lib.generate`` on the
chat template of the history the conversation should have. The tiny models have random weights with
a large init_std, so that their greedy output depends on the context (a default-init random model
repeats one token whatever it is given, and could not tell a right history from a wrong one).
"""
import io
import os
import signal
import subprocess
import sys

import pytest
import torch

from course_lib import generate
from course_lib.checkpoint import load_checkpoint, save_checkpoint
from course_lib.cli import main
from course_lib.config import ModelConfig
from course_lib.model import Transformer
from course_lib.tokenizer import CharTokenizer, load_tokenizer, train_tokenizer

TEXTS = ["今天天气很好，我们一起去公园散步。", "你好！有什么可以帮你的吗？", "hello world, how are you today?",
         "人民日报报道，今年粮食产量再创新高。"] * 20
GREEDY = ["--temperature", "0", "--repetition-penalty", "1", "--top-p", "1"]
ENV = {**os.environ, "PYTHONIOENCODING": "utf-8", "OMP_NUM_THREADS": "1", "COURSE_THREADS": "1"}


def _checkpoint(folder, tok, max_seq_len):
    torch.manual_seed(0)
    model = Transformer(ModelConfig.preset("nano", vocab_size=tok.vocab_size, max_seq_len=max_seq_len, init_std=0.5))
    return save_checkpoint(model, folder, tokenizer=tok)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    tok = train_tokenizer(TEXTS, vocab_size=320)
    return {"ctx128": _checkpoint(root / "ctx128", tok, 128), "ctx48": _checkpoint(root / "ctx48", tok, 48),
            "char": _checkpoint(root / "char", CharTokenizer.from_texts(TEXTS[:2]), 128)}


def chat(folder, lines, *extra):
    """Run ``chat`` as a real process with ``lines`` piped to stdin; (status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "course_lib", "chat", "--ckpt", str(folder), "--device", "cpu",
                           "--threads", "1", *map(str, extra)], input="".join(l + "\n" for l in lines).encode(),
                          capture_output=True, timeout=120, env=ENV)
    # bytes, decoded here: a reply may hold a bare \r that text mode would turn into \n
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


class Reference:
    """Greedy replies computed in this process, independently of the command line."""

    def __init__(self, folder, n):
        self.model, self.tok, self.n = load_checkpoint(folder), load_tokenizer(folder), n

    def ids(self, messages):
        return self.tok.encode(self.tok.apply_chat_template(messages, add_generation_prompt=True))

    def reply(self, messages, n=None):
        ids = self.ids(messages)
        out = generate(self.model, ids, max_new_tokens=n or self.n, temperature=0, eos_token_id=self.tok.eos_id)
        new = out[0, len(ids):].tolist()
        new = new[:new.index(self.tok.eos_id)] if self.tok.eos_id in new else new
        return self.tok.decode(new, skip_special_tokens=True)


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def shown(*replies):
    return "".join(f"assistant> {r}\n" for r in replies)


# ---------------------------------------------------------------- history
def test_second_turn_continues_the_conversation(ckpts):
    ref = Reference(ckpts["ctx128"], 12)
    r1 = ref.reply([user("你好")])
    r2 = ref.reply([user("你好"), assistant(r1), user("今天天气")])
    assert r1 and r2 != ref.reply([user("今天天气")])      # the history changes the reply: the check can fail
    code, out, err = chat(ckpts["ctx128"], ["你好", "今天天气"], "--max-new-tokens", 12, *GREEDY)
    assert code == 0, err                                  # EOF ends the chat with status 0
    assert out == shown(r1, r2)                            # piped stdin: no prompts, only the replies
    assert "Traceback" not in err


def test_system_clear_and_commands(ckpts):
    ref = Reference(ckpts["ctx128"], 10)
    system = {"role": "system", "content": "你是一个乐于助人的助手。"}
    r1 = ref.reply([system, user("你好")])
    r2 = ref.reply([system, user("今天天气")])             # after /clear: system kept, turn 1 forgotten
    assert r2 != ref.reply([user("今天天气")]) and r2 != ref.reply([system, user("你好"), assistant(r1),
                                                                    user("今天天气")])
    code, out, err = chat(ckpts["ctx128"], ["你好", "/clear", "今天天气", "/xyz", "/help", "/exit", "hello"],
                          "--system", system["content"], "--max-new-tokens", 10, *GREEDY)
    assert code == 0, err
    assert out.startswith(shown(r1, r2))
    help_text = out[len(shown(r1, r2)):]
    assert "/clear" in help_text and "/exit" in help_text
    assert "assistant> " not in help_text                  # neither /xyz, /help nor the line after /exit was sent
    assert "history cleared" in err and "unknown command /xyz" in err


def test_oldest_turns_are_dropped_when_the_context_is_full(ckpts):
    n, context = 8, 48
    ref = Reference(ckpts["ctx48"], n)
    lines = ["你好", "今天天气很好", "我们一起去公园散步", "人民日报报道" * 10, "你好吗"]
    # the expected conversation, built from the rule: drop the oldest user/assistant pair while the
    # prompt plus the reply budget exceeds the context; a message that cannot fit alone is not sent
    history, replies, dropped_any, too_long = [], [], False, 0
    for line in lines:
        history.append(user(line))
        while len(ref.ids(history)) + n > context and len(history) > 1:
            del history[:2]
            dropped_any = True
        if len(ref.ids(history)) + n > context:
            history.pop()
            too_long += 1
            continue
        replies.append(ref.reply(history))
        history.append(assistant(replies[-1]))
    assert dropped_any and too_long == 1                   # the case really overflows, both ways
    code, out, err = chat(ckpts["ctx48"], lines, "--max-new-tokens", n, *GREEDY)
    assert code == 0, err
    assert out == shown(*replies)
    assert "dropped the oldest" in err and "too long" in err and "Traceback" not in err


def test_a_reply_longer_than_the_context_is_capped(ckpts):
    code, out, err = chat(ckpts["ctx48"], ["你好"], "--max-new-tokens", 1000, *GREEDY)
    assert code == 0, err
    assert "replies limited to 24 tokens" in err and out.startswith("assistant> ")


# ---------------------------------------------------------------- Ctrl-C
def test_ctrl_c_stops_the_reply_and_keeps_what_was_printed(ckpts, monkeypatch, capsys):
    import course_lib.sample as sample
    ref = Reference(ckpts["ctx128"], 12)
    real, calls = sample.stream_generate, []

    def interrupted_once(*args, **kwargs):                  # the first reply is "interrupted" after 3 tokens
        calls.append(1)
        for i, token in enumerate(real(*args, **kwargs)):
            if len(calls) == 1 and i == 3:
                raise KeyboardInterrupt
            yield token

    monkeypatch.setattr(sample, "stream_generate", interrupted_once)
    monkeypatch.setattr(sys, "stdin", io.StringIO("你好\n今天天气\n"))
    code = main(["chat", "--ckpt", str(ckpts["ctx128"]), "--device", "cpu", "--threads", "1",
                 "--max-new-tokens", "12", *GREEDY])
    out, err = capsys.readouterr()
    assert code == 0, err
    partial = ref.reply([user("你好")], n=3).rstrip("\ufffd")
    r2 = ref.reply([user("你好"), assistant(partial), user("今天天气")])
    assert r2 != ref.reply([user("你好"), assistant(ref.reply([user("你好")])), user("今天天气")])
    assert out.startswith(f"assistant> {partial}") and out.endswith(f"assistant> {r2}\n")
    assert "reply stopped" in err


def test_ctrl_c_at_the_prompt_exits_130(ckpts):
    proc = subprocess.Popen([sys.executable, "-m", "course_lib", "chat", "--ckpt", str(ckpts["ctx128"]),
                             "--device", "cpu", "--threads", "1"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        seen = []                                          # "chatting with" comes once the model is loaded
        while not (seen and seen[-1].startswith("chatting with")):
            seen.append(proc.stderr.readline().decode())
            assert seen[-1], seen                          # EOF: the process ended before its prompt
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err and out == b""


# ---------------------------------------------------------------- bad input and help
def test_bad_checkpoint_is_one_error_line(tmp_path):
    code, out, err = chat(tmp_path / "no_such_run", ["你好"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "no_such_run" in lines[0], err


@pytest.mark.parametrize("option, value", [("--top-p", 2), ("--temperature", -1), ("--repetition-penalty", 0)])
def test_bad_sampling_options_are_refused_before_the_chat_starts(ckpts, option, value):
    code, out, err = chat(ckpts["ctx128"], ["你好"], option, value)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and option.lstrip("-").split("-")[0] in lines[0], err
    assert out == ""                                   # not even the reply prefix


def test_a_tokenizer_that_cannot_write_the_chat_template_is_refused(ckpts):
    # a character tokenizer that never saw the letters of "user"/"assistant" reads them back as unk
    code, out, err = chat(ckpts["char"], ["你好"])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and "chat template" in lines[0], err
    assert out == ""


def test_help_lists_system_and_the_commands(capsys):
    assert main(["chat", "--help"]) == 0
    out = capsys.readouterr().out
    for word in ("--ckpt", "--system", "--max-new-tokens", "--temperature", "/clear", "/exit", "/help"):
        assert word in out, word
