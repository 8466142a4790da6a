"""Label Studio ML backend: pace, pitch and volume pre-annotations measured from the audio.

Not built yet (issue: the ML backend); the package exists so the layout is the one DESIGN.md describes.
"""
