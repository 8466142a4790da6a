"""Statistics over tidy (task, worker, label) rows: agreement with bootstrap intervals (agreement.py),
Wilson intervals and when a bootstrap is valid (intervals.py),
Dawid-Skene worker skill (dawid_skene.py), and sentence embeddings (embeddings.py). Data in, figures out.

May import: label_config and numerical libraries only.
"""
