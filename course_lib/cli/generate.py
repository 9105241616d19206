"""``generate``: continue a prompt with a trained checkpoint, printing tokens as they are sampled.

    python -m course_lib generate --ckpt runs/tiny --prompt 今天
    python -m course_lib generate --ckpt runs/tiny-sft --chat --prompt 你好 --temperature 0
"""
from __future__ import annotations

from typing import Optional

from .common import CLIError, add_checkpoint_args, open_checkpoint, positive_int, set_threads


def check_sampling_options(args) -> None:
    """Bad --temperature/--top-k/--top-p/--repetition-penalty fail before the model loads."""
    from ..sample import check_sampling_args

    check_sampling_args(args.temperature, args.top_k, args.top_p, args.repetition_penalty)


def cmd_generate(args) -> int:
    import torch

    check_sampling_options(args)
    model, tokenizer, _ = open_checkpoint(args.ckpt, args.tokenizer, args.device)
    set_threads(args, to_stderr=True)
    if args.chat:
        text = tokenizer.apply_chat_template([{"role": "user", "content": args.prompt}], add_generation_prompt=True)
        prompt_ids = tokenizer.encode(text)
    else:
        prompt_ids = tokenizer.encode(args.prompt, add_special_tokens=True)
    if len(prompt_ids) == 0:
        raise CLIError("--prompt is empty")
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(args.seed)
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1}")
        if not args.chat:
            print(args.prompt, end="", flush=True)
        stream_reply(model, tokenizer, prompt_ids, args, g)
    return 0


def stream_reply(model, tokenizer, prompt_ids, args, generator, new: Optional[list] = None) -> list:
    """Sample a continuation of ``prompt_ids``, print its text as it grows; returns the new ids.

    Byte-level BPE tokens can end inside a UTF-8 character, so the text is decoded from all new ids
    each step and only the part that is complete (no trailing replacement character) is printed.
    ``new``: a list the ids are appended to as they come, so a caller still has them after Ctrl-C."""
    from ..sample import stream_generate

    new, shown = ([] if new is None else new), ""
    for token in stream_generate(model, [prompt_ids], max_new_tokens=args.max_new_tokens,
                                 temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                 repetition_penalty=args.repetition_penalty, eos_token_id=tokenizer.eos_id,
                                 generator=generator, truncate=True):
        t = int(token[0])
        if t == tokenizer.eos_id:
            break
        new.append(t)
        text = tokenizer.decode(new, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue                     # half a character: wait for the rest of its bytes
        print(text[len(shown):], end="", flush=True)
        shown = text
    text = tokenizer.decode(new, skip_special_tokens=True)
    print(text[len(shown):], flush=True)
    return new


# fixed prompts for greedy samples (eval, the run report), chosen by the language of the text
SAMPLE_PROMPTS = {"zh": ("今天", "中国", "我们"), "en": ("The ", "In the beginning", "He said")}
CHAT_PROMPTS = {"zh": ("你好", "请介绍一下你自己。", "今天天气怎么样？"), "en": ("Hello!", "Who are you?", "What is 2 + 3?")}


def text_language(texts) -> str:
    """``"zh"`` when CJK characters are at least a third of the texts' first 2000 characters, else ``"en"``."""
    head = "".join(texts)[:2000]
    cjk = sum("\u4e00" <= c <= "\u9fff" for c in head)
    return "zh" if cjk * 3 >= max(len(head), 1) else "en"


def greedy_samples(model, tokenizer, prompts, max_new_tokens: int = 40, chat: bool = False) -> list:
    """``[(prompt, continuation)]``: each prompt continued by up to ``max_new_tokens`` argmax tokens,
    stopping at EOS. Deterministic, so two runs (or two checkpoints) can be compared line by line.
    ``chat``: the prompt is a user message wrapped in the chat template (SFT models); otherwise it
    follows a BOS."""
    from ..sample import generate

    out = []
    for prompt in prompts:
        if chat:
            ids = tokenizer.encode(tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                                 add_generation_prompt=True))
        else:
            ids = tokenizer.encode(prompt, add_special_tokens=True)
        if not prompt or len(ids) == 0:
            raise CLIError("a sample prompt is empty")
        new = generate(model, ids, max_new_tokens=max_new_tokens, temperature=0.0, eos_token_id=tokenizer.eos_id,
                       truncate=True)[0, len(ids):].tolist()
        new = new[:new.index(tokenizer.eos_id)] if tokenizer.eos_id in new else new
        out.append((prompt, tokenizer.decode(new, skip_special_tokens=True)))
    return out


def add_sampling_args(p, max_new_tokens: int = 100, temperature: float = 0.8, top_p: float = 0.9,
                      repetition_penalty: float = 1.1) -> None:
    p.add_argument("--max-new-tokens", type=positive_int, default=max_new_tokens,
                   help=f"tokens to sample (default {max_new_tokens})")
    p.add_argument("--temperature", type=float, default=temperature, help=f"0 = greedy (default {temperature})")
    p.add_argument("--top-k", type=positive_int, default=None, help="sample among the k likeliest tokens (default: off)")
    p.add_argument("--top-p", type=float, default=top_p, help=f"nucleus sampling mass (default {top_p}; 1 = off)")
    p.add_argument("--repetition-penalty", type=float, default=repetition_penalty,
                   help=f"default {repetition_penalty} (1 = off)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def add_parsers(sub) -> None:
    p = sub.add_parser("generate", help="continue a prompt with a trained checkpoint",
                       description="Sample a continuation of --prompt from a checkpoint, printed as it is sampled.")
    add_checkpoint_args(p)
    p.add_argument("--prompt", default="今天", help="the text to continue (default 今天)")
    add_sampling_args(p)
    p.add_argument("--num-samples", type=positive_int, default=1, help="independent samples (default 1)")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the chat template (SFT models)")
    p.set_defaults(func=cmd_generate)
