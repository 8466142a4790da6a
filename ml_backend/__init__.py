"""Label Studio ML backend: pace, pitch and volume pre-annotations measured from the audio.

What it holds, in the order the data flows:
- audio.py: decoding a clip into one mono signal, with clear errors for audio we cannot use;
- fetch.py: getting a task's audio from Label Studio or a folder, without SSRF;
- measures.py: the acoustic measures (speaking time, syllable rate, F0, levels, changes, voice);
- labels.py: measures -> pace/pitch/volume and voice words with calibrated scores, speaker
  references, and fitting the calibration;
- calibrations.py: the per-project calibrations and speaker references kept in CLESC_ML_DIR;
- model.py: `ClescBackend`, the LabelStudioMLBase subclass (predict, fit);
- app.py: `create_ml_app(config)`, the WSGI app LS connects to.

May import: label_config, label-studio-ml and the audio libraries; never webhooks or scripts (the
entry point, scripts/wsgi.py, hands it its settings and its Label Studio client).
"""
