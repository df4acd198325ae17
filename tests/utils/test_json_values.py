"""json_safe: strict JSON for reports that may hold NaN (a metric without a value)."""
import json
import math

from gan.utils.json_values import json_safe


def test_non_finite_values_become_strings_everywhere_and_the_rest_stays():
    report = {"values": {"fid": 1.5, "kl": math.nan}, "runs": [{"x": math.inf}, (-math.inf, 2)], "name": "run", "n": 3}
    safe = json_safe(report)
    assert safe == {"values": {"fid": 1.5, "kl": "nan"}, "runs": [{"x": "inf"}, ["-inf", 2]], "name": "run", "n": 3}
    text = json.dumps(safe, allow_nan=False)  # a bare NaN would raise here, as strict parsers refuse it
    assert json.loads(text)["values"]["kl"] == "nan" and math.isnan(float(json.loads(text)["values"]["kl"]))  # float() reads it
