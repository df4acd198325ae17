"""Values for strict JSON: NaN and infinities written as the strings "nan", "inf" and "-inf"."""
from __future__ import annotations

import math
from typing import Any, Mapping


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float, inside mappings and sequences too, written as a string: JSON has no
    literal for them, and Python's ``NaN`` is refused by strict parsers (``jq``, JavaScript's ``JSON.parse``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
