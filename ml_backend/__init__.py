"""Label Studio ML backend: pace, pitch and volume pre-annotations measured from the audio.

audio.py decodes, fetch.py gets a task's audio without SSRF, measures.py measures, labels.py turns
measures into labels with a per-project calibration, model.py is the LabelStudioMLBase subclass and
`create_ml_app(config)`. Imports label_config only.
"""
