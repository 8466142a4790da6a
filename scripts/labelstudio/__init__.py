"""Label Studio adapters: projects, tasks, users, webhooks and ML backends (projects.py), and `clesc setup` (wiring.py).

May import: label_config, webhooks (the client, the store); not the other script packages.
"""
