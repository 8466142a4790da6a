"""Judge backends: one task's annotations in, a TaskVerdict (the VERDICTS.json contract) out.

`rules` is the deterministic, embedded default; every backend returns the same TaskVerdict.
"""

from webhooks.judge.offline import judge_export, load_export
from webhooks.judge.rules import RULES_VERSION, Policy, RulesJudge
from webhooks.judge.verdict import (
    ANNOTATION_VERDICTS,
    REASON_CODES,
    TASK_STATUSES,
    AnnotationVerdict,
    Reason,
    TaskVerdict,
)

__all__ = [
    "ANNOTATION_VERDICTS",
    "REASON_CODES",
    "RULES_VERSION",
    "TASK_STATUSES",
    "AnnotationVerdict",
    "Policy",
    "Reason",
    "RulesJudge",
    "TaskVerdict",
    "judge_export",
    "load_export",
]
