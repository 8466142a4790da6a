"""Build a tiny RANDOM-weight Mixtral (model + tokenizer + chat template) for the local vLLM judge tests.

Runs under the vLLM environment's python (torch, transformers, tokenizers), NOT the project's venv,
and imports nothing from the project:

    .venv-vllm/bin/python scripts/local/tiny_mixtral.py --out /tmp/mixtral-tiny --taxonomy label_config/taxonomy.yaml

The weights are random (seed 0), so the model's text is nonsense; what is real is the architecture
vLLM loads (MixtralForCausalLM, 4 experts, top-2), a byte-level BPE tokenizer trained here on JSON
punctuation, digits and our taxonomy's words, and a chat template in Mixtral-Instruct-v0.1's style:
`<s>[INST] user [/INST]assistant</s>`, which RAISES on a "system" message and on roles that do not
alternate user/assistant, like the real one (vLLM answers such a request with a 400).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HIDDEN = 64
HEAD_DIM = 32  # vLLM's CPU attention supports head sizes 32, 64, 80, 96, ...; 64/2 heads = 32
VOCAB_TARGET = 3000

# Mixtral-8x7B-Instruct-v0.1's template, same checks and layout.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{ raise_exception('System role not supported') }}"
    "{%- endif -%}"
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'user' -%}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ message['content'] + eos_token }}"
    "{%- else -%}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

BASE_CORPUS = """
You are a judge of speech emotion annotations. Three crowd workers and three experts described one
audio clip. Compare their labels and answer with a JSON object only. The verdict is agree, disagree,
or unsure. Give a score from 0 to 100, a confidence, and a short reason.
Pace: slow, normal, fast, variable. Pitch: low, medium, high, variable. Volume: quiet, medium, loud,
variable. Voice and emotion are free text, comma separated. Annotation, annotator, worker, expert,
crowd, label, labels, task, project, result, choices, taxonomy, judge, verdict, reason, score,
confidence, consistent, inconsistent, contradiction, contradicts, opposes, implies, valence, arousal,
agreement, disagreement, majority, minority, accept, reject, review, flag, flagged, ok, true, false,
null, yes, no, the, a, an, and, or, not, of, to, in, on, is, are, was, with, for, by, as, at, this, that.
[INST] [/INST] <s> </s>
{"verdict": "agree", "score": 87, "reason": "all annotators heard a sad, slow voice"}
{"verdict":"disagree","score":12,"reason":"pace fast contradicts slow"}
{"verdict": "unsure", "score": 50, "confidence": 0.5, "flags": ["pace", "emotion"], "ok": true}
[{"a": 1}, {"b": [2, 3]}, {"c": null, "d": false, "e": true, "f": -4.5e-3}]
{ } [ ] : , " ' \\ / - _ . ; ! ? ( ) < > = + * & % $ # @ ~ ` ^ |
0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 40 50 60 70 75 80 90 99 100 1000
0.0 0.1 0.2 0.25 0.3 0.4 0.5 0.6 0.7 0.75 0.8 0.9 1.0 -1 -0.5 2024 2025 2026
Common Voice, Voxceleb, CLESC, Toloka, Label Studio.
"""


def taxonomy_words(path: Path | None) -> list[str]:
    if path is None or not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    # Every word and hyphenated word in the file (keys, hints, opposes/implies lists); no yaml needed.
    return sorted(set(re.findall(r"[A-Za-z][A-Za-z'-]*", text)))


def corpus(words: list[str]) -> list[str]:
    lines = [line for line in BASE_CORPUS.splitlines() if line.strip()]
    for i in range(0, len(words), 12):
        chunk = words[i:i + 12]
        lines.append(" ".join(chunk))
        lines.append(", ".join(w.capitalize() for w in chunk))
        lines.append(json.dumps({"emotion": chunk[:3], "voice": ", ".join(chunk[3:6]), "reason": " ".join(chunk)}))
    # Repeat so frequent pieces (JSON punctuation, keys, digits) win the merges.
    return lines * 3 + [json.dumps({"score": n, "verdict": v}) for n in range(101) for v in ("agree", "disagree")]


def build_tokenizer(words: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_TARGET, min_frequency=1, special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(corpus(words), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        model_max_length=4096, clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(vocab_size: int, bos_id: int, eos_id: int):
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=vocab_size, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=HEAD_DIM, num_local_experts=4,
        num_experts_per_tok=2, max_position_embeddings=16384, bos_token_id=bos_id, eos_token_id=eos_id,
        tie_word_embeddings=False, sliding_window=None,
    )
    model = MixtralForCausalLM(config).to(torch.float32)
    model.eval()
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--taxonomy", type=Path, help="label_config/taxonomy.yaml: its words join the corpus")
    args = parser.parse_args(argv)

    tokenizer = build_tokenizer(taxonomy_words(args.taxonomy))
    model = build_model(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    # Sanity: the template renders a user turn and refuses a system one.
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered == "<s>[INST] hi [/INST]", rendered
    try:
        tokenizer.apply_chat_template([{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}],
                                      tokenize=False)
    except Exception:
        pass
    else:
        raise SystemExit("chat template accepted a system message")
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file())
    print(json.dumps({"out": str(args.out), "vocab_size": len(tokenizer),
                      "parameters": sum(p.numel() for p in model.parameters()), "bytes": size}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
