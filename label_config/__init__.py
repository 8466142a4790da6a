"""The labeling schema: the domain core of clesc-studio. No I/O: no HTTP, no Label Studio client, no settings.

What it holds:
- schema.py: the fixed names (pace/pitch/volume and their values, the word kinds, the pools, audio);
- taxonomy.py + taxonomy.yaml: the word pool, the one source of truth for words;
- concepts.py: groups of near-synonymous words (what the judge's logical vote counts together);
- records.py: LS results <-> typed `LabelRecord`s, with the validation LS does not do; every LS
  result the project writes (annotations, the consensus prediction, the ML pre-fills) is built here;
- meta.py: the task meta keys the service writes (`clesc`, `clesc_pair`), typed;
- clesc.py: the CLESC dataset's cell format; render.py: the LS XML; redact.py: secrets out of payloads.

May import: the standard library and PyYAML only; nothing else of the project. Everything else imports from here.
"""

from label_config.records import (
    InvalidLabel,
    LabelRecord,
    Problem,
    consensus_result,
    current_annotations,
    is_cancelled,
    parse_annotation,
    superseded_by,
    to_annotation,
    to_result,
)
from label_config.render import annotator_instructions, labeling_config, review_config
from label_config.schema import ATTRIBUTES, CATEGORICAL, POOLS, REVIEW, WORD_KINDS
from label_config.taxonomy import Taxonomy, TaxonomyError, Word, load_taxonomy

__all__ = [
    "ATTRIBUTES",
    "CATEGORICAL",
    "POOLS",
    "REVIEW",
    "WORD_KINDS",
    "InvalidLabel",
    "LabelRecord",
    "Problem",
    "Taxonomy",
    "TaxonomyError",
    "Word",
    "annotator_instructions",
    "consensus_result",
    "current_annotations",
    "is_cancelled",
    "labeling_config",
    "load_taxonomy",
    "parse_annotation",
    "review_config",
    "superseded_by",
    "to_annotation",
    "to_result",
]
