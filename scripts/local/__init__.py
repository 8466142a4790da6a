"""Local servers and the demo: processes started and stopped by PID (process.py), a Label Studio in its own
environment (labelstudio.py), PostgreSQL and Redis on loopback (databases.py), a vLLM CPU server (vllm.py)
with SmolLM2-135M-Instruct (smollm2.py, the tests' real model) or a tiny random Mixtral (tiny_mixtral.py),
`clesc demo` (demo.py), the espeak sample clips (samples.py) and the real-speech corpus (corpus.py).

May import: label_config, webhooks, scripts.labelstudio, scripts.pools, scripts.report.
"""
