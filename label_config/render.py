"""Label Studio XML rendered from the schema and the taxonomy (never typed by hand).

>>> xml = labeling_config()
>>> '<Taxonomy name="emotion"' in xml and '<Choices name="pace"' in xml
True
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET

from label_config.schema import ATTRIBUTES, AUDIO, OTHER, WORD_KINDS
from label_config.taxonomy import Taxonomy, load_taxonomy

WORD_KIND_TITLES = {
    "emotion": ("Emotions you hear", "Search emotion words, e.g. calm, tense, amused"),
    "voice": ("Voice characteristics", "Search voice words, e.g. husky, monotonous, whispering"),
}

REVIEW_DECISIONS = {
    "uphold": "Uphold rejection: the labels are wrong",
    "overturn": "Overturn: the labels are acceptable",
}
"""Review decision aliases (what the result holds) and the labels ops see."""

REVIEW_DATA_KEYS = ("audio", "details", "reasons", "labels", "consensus")
"""Task data keys the Review interface shows (a Review task's data also links the pool task: docs/contracts.md)."""

REVIEW_HOTKEYS = ("1", "2")
"""Uphold, overturn: digits, so typing a comment never decides."""


def _to_xml(root: ET.Element) -> str:
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode") + "\n"


SUGGESTIONS_NOTE = ("Answers already chosen when a clip opens are the machine's suggestions, measured from the"
                    " audio (its confidence is shown next to them): listen and change any that do not fit")
"""Said above the controls: pre-chosen values are suggestions to check, not answers (issue 12)."""


def labeling_config(taxonomy: Taxonomy | None = None) -> str:
    """The annotators' interface: audio, pace/pitch/volume, emotion and voice taxonomies, other words."""
    tax = taxonomy or load_taxonomy()
    root = ET.Element("View")
    ET.SubElement(root, "Header", value="Listen to the clip, then describe how it is said (not what is said)")
    ET.SubElement(root, "Header", value=SUGGESTIONS_NOTE, size="6")
    ET.SubElement(root, "Audio", name=AUDIO, value=f"${AUDIO}", hotkey="ctrl+p")
    for attr in ATTRIBUTES.values():
        ET.SubElement(root, "Header", value=f"{attr.title}: {attr.hint}", size="5")
        choices = ET.SubElement(
            root, "Choices", name=attr.name, toName=AUDIO, choice="single-radio",
            showInline="true", required="true", requiredMessage=f"Choose the {attr.name}",
        )
        for value, hint, key in zip(attr.values, attr.value_hints, attr.hotkeys):
            ET.SubElement(choices, "Choice", value=value, hint=hint, hotkey=key)
    for kind in WORD_KINDS:
        title, placeholder = WORD_KIND_TITLES[kind]
        ET.SubElement(root, "Header", value=title, size="5")
        node = ET.SubElement(
            root, "Taxonomy", name=kind, toName=AUDIO, leafsOnly="true",
            showFullPath="false", placeholder=placeholder,
        )
        for fam in tax.families_of(kind):
            group = ET.SubElement(node, "Choice", value=fam.name, hint=fam.hint)
            for word in fam.words:
                ET.SubElement(group, "Choice", value=word)
    ET.SubElement(root, "Header", value="Other words (optional): only if nothing above fits", size="5")
    ET.SubElement(
        root, "TextArea", name=OTHER, toName=AUDIO, rows="1", editable="true", showSubmitButton="true",
        placeholder="Words not in the lists, separated by commas",
    )
    return _to_xml(root)


def review_config() -> str:
    """The ops interface of the Review project: one proposed rejection per task, and a decision.

    `details` is HTML the service builds (every value escaped): the clip and its pool, the annotator, the
    judge's confidence and the annotator's reliability, the three annotators' labels side by side with the
    one under review marked, the ML backend's measures, and a link to the pool task.
    """
    root = ET.Element("View")
    ET.SubElement(root, "Header", value="A proposed rejection: listen, compare the labels, decide")
    ET.SubElement(root, "Audio", name="audio", value="$audio")
    ET.SubElement(root, "HyperText", name="details", value="$details", inline="true")
    ET.SubElement(root, "Header", value="Why the judge proposes to reject it", size="5")
    ET.SubElement(root, "Text", name="reasons", value="$reasons")
    ET.SubElement(root, "Header", value="Decision", size="5")
    decision = ET.SubElement(
        root, "Choices", name="decision", toName="audio", choice="single-radio",
        required="true", requiredMessage="Uphold or overturn the rejection",
    )
    for (alias, label), key in zip(REVIEW_DECISIONS.items(), REVIEW_HOTKEYS):
        ET.SubElement(decision, "Choice", value=label, alias=alias, hotkey=key)
    ET.SubElement(
        root, "TextArea", name="comment", toName="audio", rows="2", editable="true",
        maxSubmissions="1", placeholder="Comment for the annotator or the team (optional; kept with the decision)",
    )
    return _to_xml(root)


def review_details(*, clip: str, pool: str, annotator: str, task_url: str | None, confidence: float | None,
                   reliability: str, columns: list[tuple[str, dict[str, str], bool]],
                   measures: dict[str, str]) -> str:
    """The HTML of a Review task's `details`: every value escaped here (they come from annotators and LS).

    `columns`: (annotator, {attribute or word kind: what they chose}, the one under review), in task order.

    >>> html_ = review_details(clip="a.wav", pool="crowd", annotator="x@example.com", task_url=None,
    ...                        confidence=0.9, reliability="fine", columns=[("<b>", {"pace": "fast"}, True)],
    ...                        measures={})
    >>> "&lt;b&gt;" in html_ and "<b>" not in html_.split("<table")[1]
    True
    """
    e = html.escape
    rows = [*ATTRIBUTES, *WORD_KINDS, OTHER]
    head = "".join(f"<th>{e(name)}{' (under review)' if flagged else ''}</th>" for name, _, flagged in columns)
    marked = ' style="background:#fde8e8"'
    body = "".join(
        "<tr><th>" + e(row) + "</th>" + "".join(
            f"<td{marked if flagged else ''}>{e(labels.get(row, '') or '-')}</td>"
            for _, labels, flagged in columns) + "</tr>" for row in rows)
    link = f' · <a href="{e(task_url)}" target="_blank" rel="noopener">open the pool task</a>' if task_url else ""
    sure = "-" if confidence is None else f"{confidence:.0%}"
    measured = ", ".join(f"{e(k)} {e(v)}" for k, v in measures.items()) or "none"
    return (
        f"<p><b>{e(clip)}</b> · {e(pool)} pool{link}</p>"
        f"<p>Under review: <b>{e(annotator)}</b> · judge's confidence {sure} · {e(reliability)}</p>"
        f"<table><tr><th></th>{head}</tr>{body}</table>"
        f"<p>Measured from the audio: {measured}</p>"
    )


def annotator_instructions(taxonomy: Taxonomy | None = None) -> str:
    """Short HTML instructions shown to annotators (LS project `expert_instruction`)."""
    tax = taxonomy or load_taxonomy()
    counts = {k: len(tax.words_of(k)) for k in WORD_KINDS}
    items = "".join(
        f"<li><b>{a.title}</b>: {html.escape(a.hint)} "
        f"({', '.join(f'{v} [{k}]' for v, k in zip(a.values, a.hotkeys))})</li>"
        for a in ATTRIBUTES.values()
    )
    return (
        "<p>Listen to the whole clip (Ctrl+P plays and pauses). Describe <i>how</i> it is said, not what is said. "
        "Hotkeys are digits (Shift with a digit for volume); they act only outside the text fields.</p>"
        f"<ul>{items}</ul>"
        f"<p><b>Emotions</b> ({counts['emotion']} words) and <b>voice</b> ({counts['voice']} words): "
        "type in the search box and tick every word that fits; pick only what you hear, "
        "words that contradict each other (calm and agitated) will be checked.</p>"
        "<p><b>Other words</b>: only for something no listed word covers, separated by commas.</p>"
    )


def project_description(pool: str) -> str:
    """One-line project description for the project list."""
    return (
        f"{pool} pool: 3 annotators per clip label pace, pitch, volume, emotions and voice; "
        "the judge checks each set of 3 labels."
    )
