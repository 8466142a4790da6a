"""The Expert and Crowd pools side by side.

- dataset.py: `Dataset`, one tidy table of both pools' annotations per clip;
- sources.py: Datasets from a CLESC file, LS exports, a live LS, a manifest or a folder;
- verdicts.py: the rules judge's verdicts where the data carries none;
- importer.py (`clesc import`), sync.py (`clesc sync`), pairs.py (the `clesc_pair` link both write),
  export.py (`clesc export`).

May import: label_config, webhooks, scripts.labelstudio.
"""
