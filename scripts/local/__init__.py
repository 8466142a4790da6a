"""Local servers and the demo: processes started and stopped by PID (process.py), a Label Studio in its own
environment (labelstudio.py), a vLLM CPU server with a tiny random Mixtral (vllm.py, tiny_mixtral.py),
`clesc demo` (demo.py) and the espeak sample clips (samples.py).

May import: label_config, webhooks, scripts.labelstudio, scripts.pools, scripts.report.
"""
