"""Every method a meter can report has words for readouts and status (a missing one is a KeyError)."""

from nbcarbon.meters.base import METHOD_KIND
from nbcarbon.readout import METHOD_LABEL


def test_every_method_has_a_label_and_a_kind() -> None:
    assert set(METHOD_LABEL) == set(METHOD_KIND)
    assert set(METHOD_KIND.values()) <= {"measured", "sampled", "estimated"}
