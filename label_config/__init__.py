"""The labeling schema: taxonomy, Label Studio XML rendered from it, and LS results <-> typed records.

The domain core of clesc-studio: no HTTP, no Label Studio client, no settings. Everything
else imports from here; this package imports nothing else of the project.
"""

from label_config.records import (
    InvalidLabel,
    LabelRecord,
    Problem,
    parse_annotation,
    to_annotation,
    to_result,
)
from label_config.render import labeling_config, review_config, annotator_instructions
from label_config.schema import ATTRIBUTES, CATEGORICAL, WORD_KINDS
from label_config.taxonomy import Taxonomy, TaxonomyError, Word, load_taxonomy

__all__ = [
    "ATTRIBUTES",
    "CATEGORICAL",
    "WORD_KINDS",
    "InvalidLabel",
    "LabelRecord",
    "Problem",
    "Taxonomy",
    "TaxonomyError",
    "Word",
    "annotator_instructions",
    "labeling_config",
    "load_taxonomy",
    "parse_annotation",
    "review_config",
    "to_annotation",
    "to_result",
]
