"""``chat``: a multi-turn conversation with a checkpoint (normally an SFT model), streamed as sampled.

    python -m course_lib chat --ckpt runs/tiny-sft
    python -m course_lib chat --ckpt runs/tiny-sft --system "你是一个乐于助人的助手。" --temperature 0
    printf '你好\\n今天天气怎么样\\n' | python -m course_lib chat --ckpt runs/tiny-sft

Each line read from stdin is a user message. The history is a list of ``{"role", "content"}``
messages (an optional system message first); every turn renders the whole history with the chat
template, so the model sees the conversation so far, and the reply joins the history as the text
that was printed.

Output: each reply is printed on stdout after ``assistant> `` as it is sampled. The ``you> ``
prompt is shown only when stdin is a terminal, so piped input gives a transcript made of replies
alone. Notes (history cleared, turns dropped, a reply stopped) go to stderr.

Ctrl-C while a reply streams stops it; what was printed is kept as the assistant's turn (the history
holds what the user saw). Ctrl-C at the prompt ends the program with status 130; EOF (Ctrl-D),
``/exit`` or ``/quit`` with status 0.
"""
from __future__ import annotations

import sys
from typing import Callable, List, Optional, Tuple

from .common import CLIError, add_checkpoint_args, open_checkpoint, set_threads
from .generate import add_sampling_args, check_sampling_options, stream_reply

COMMANDS = (("/clear", "forget the conversation (the --system message stays)"),
            ("/help", "list these commands"),
            ("/exit, /quit", "leave (as does Ctrl-D); Ctrl-C stops a reply, at the prompt it leaves"))
PROMPT, REPLY = "you> ", "assistant> "


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fit_history(messages: List[dict], encode: Callable[[List[dict]], List[int]], budget: int,
                context: int) -> Tuple[Optional[List[int]], int]:
    """Make ``messages`` (system?, user, assistant, ..., user) fit the model's context.

    The oldest user/assistant turns are removed from ``messages`` (in place; never the system
    message, never the newest user message) until the prompt's ``len(ids) + budget <= context``.
    Returns ``(prompt ids, turns dropped)``; the ids are None when the newest user message does not
    fit even alone (the list then holds system? + that message)."""
    first = 1 if messages and messages[0]["role"] == "system" else 0
    dropped = 0
    while True:
        ids = encode(messages)
        if len(ids) + budget <= context:
            return ids, dropped
        if len(messages) - first <= 1:          # only the newest user message is left
            return None, dropped
        del messages[first]                     # a user message ...
        if len(messages) - first > 1 and messages[first]["role"] == "assistant":
            del messages[first]                 # ... with its reply
        dropped += 1


def check_chat_template(tokenizer, system: Optional[str]) -> None:
    """Refuse a tokenizer that cannot render the chat template or cannot spell it in its own tokens
    (a character tokenizer that never saw the letters of ``user``/``assistant`` maps them to unk)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": ""}]
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        back = tokenizer.decode(tokenizer.encode(text))
    except (AttributeError, NotImplementedError, TypeError, ValueError, KeyError) as e:
        raise CLIError(f"the tokenizer {tokenizer!r} has no usable chat template ({e}); chat needs a chat "
                       "(SFT) checkpoint with its BPE tokenizer: pass one with --ckpt, or --tokenizer") from None
    if back != text:
        raise CLIError(f"the tokenizer {tokenizer!r} cannot spell the chat template (it reads back as "
                       f"{back[:60]!r}); chat needs a chat (SFT) checkpoint with its BPE tokenizer, e.g. one "
                       "from 'python -m course_lib sft'")


def cmd_chat(args) -> int:
    import torch

    check_sampling_options(args)                # before the model loads and the first prompt
    model, tokenizer, folder = open_checkpoint(args.ckpt, args.tokenizer, args.device)
    set_threads(args, to_stderr=True)
    check_chat_template(tokenizer, args.system)
    context = model.config.max_seq_len
    if args.max_new_tokens >= context:         # a reply as long as the context leaves no room to ask
        args.max_new_tokens = max(1, context // 2)
        note(f"the model's context is {context} tokens: replies limited to {args.max_new_tokens} tokens")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: List[dict] = list(system)
    tty = sys.stdin.isatty()

    def encode(messages):
        return tokenizer.encode(tokenizer.apply_chat_template(messages, add_generation_prompt=True))

    note(f"chatting with {folder} (context {context} tokens); /help lists the commands, Ctrl-D leaves")
    while True:
        try:                                    # input() strips the newline; readline() says EOF with ""
            line = input(PROMPT) if tty else (sys.stdin.readline() or None)
        except EOFError:                        # Ctrl-D at the prompt
            line = None
        if line is None:
            if tty:
                print()
            return 0
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        if text.startswith("/"):
            command = text.strip().split()[0].lower()
            if command in ("/exit", "/quit"):
                return 0
            if command == "/clear":
                history[:] = system
                note("history cleared" + (" (the system message stays)" if system else ""))
            elif command == "/help":
                print("\n".join(f"  {c:<14} {h}" for c, h in COMMANDS), flush=True)
            else:
                note(f"unknown command {command}; /help lists the commands (nothing was sent to the model)")
            continue
        history.append({"role": "user", "content": text})
        prompt_ids, dropped = fit_history(history, encode, args.max_new_tokens, context)
        if dropped:
            note(f"history: dropped the oldest {dropped} turn(s) to fit the model's context of {context} tokens")
        if prompt_ids is None:
            history.pop()
            note(f"that message is too long: with a reply of up to {args.max_new_tokens} tokens it does not fit "
                 f"the model's context of {context} tokens; write a shorter one (or lower --max-new-tokens)")
            continue
        history.append({"role": "assistant", "content": reply(model, tokenizer, prompt_ids, args, generator)})


def reply(model, tokenizer, prompt_ids, args, generator) -> str:
    """Stream one reply after ``assistant> ``; its text. Ctrl-C stops it and keeps what was printed."""
    new: list = []
    print(REPLY, end="", flush=True)
    try:
        stream_reply(model, tokenizer, prompt_ids, args, generator, new)
    except KeyboardInterrupt:
        print(flush=True)
        note("(reply stopped; what was printed stays in the history)")
        # the last bytes of a character whose rest never came were not printed: not kept either
        return tokenizer.decode(new, skip_special_tokens=True).rstrip("\ufffd")
    return tokenizer.decode(new, skip_special_tokens=True)


def add_parsers(sub) -> None:
    p = sub.add_parser("chat", help="talk with a chat (SFT) checkpoint, several turns, streamed",
                       description="A conversation with a checkpoint: each stdin line is a user message; the "
                                   "history is rendered with the chat template and the reply streams as it is "
                                   "sampled. Oldest turns are dropped (noted on stderr) when the model's context "
                                   "is full. Prompts are shown only when stdin is a terminal.",
                       epilog="commands at the prompt:\n" + "\n".join(f"  {c:<14} {h}" for c, h in COMMANDS))
    add_checkpoint_args(p)
    p.add_argument("--system", default=None, help="a system message kept at the start of the conversation")
    add_sampling_args(p, max_new_tokens=256, temperature=0.7, top_p=0.9, repetition_penalty=1.1)
    p.set_defaults(func=cmd_chat)
