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

REVIEW_DATA_KEYS = ("audio", "labels", "reasons", "consensus")
"""Task data keys a Review-project task carries (besides meta linking the annotation)."""


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
    """The ops interface of the Review project: one proposed rejection per task, and a decision."""
    root = ET.Element("View")
    ET.SubElement(root, "Header", value="A proposed rejection: listen, read the labels and the judge's reasons, decide")
    ET.SubElement(root, "Audio", name="audio", value="$audio")
    for key, title in (
        ("labels", "Labels under review"),
        ("reasons", "Why the judge proposes to reject them"),
        ("consensus", "What the other annotators agreed on"),
    ):
        ET.SubElement(root, "Header", value=title, size="5")
        ET.SubElement(root, "Text", name=key, value=f"${key}")
    ET.SubElement(root, "Header", value="Decision", size="5")
    decision = ET.SubElement(
        root, "Choices", name="decision", toName="audio", choice="single-radio",
        required="true", requiredMessage="Uphold or overturn the rejection",
    )
    for (alias, label), key in zip(REVIEW_DECISIONS.items(), ("u", "o")):
        ET.SubElement(decision, "Choice", value=label, alias=alias, hotkey=key)
    ET.SubElement(
        root, "TextArea", name="comment", toName="audio", rows="2", editable="true",
        maxSubmissions="1", placeholder="Comment for the annotator or the team (optional)",
    )
    return _to_xml(root)


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
        "<p>Listen to the whole clip (Ctrl+P plays and pauses). Describe <i>how</i> it is said, not what is said.</p>"
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
