"""Webhook service: ingest LS webhooks, queue, judge (rules | llm), write verdicts back to LS.

Not built yet (issue: the judge loop); the package exists so the layout is the one DESIGN.md describes.
"""
