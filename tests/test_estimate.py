"""The what-if calculator: Strubell et al. (2019) Table 3, presets, intensity inputs, errors."""

from __future__ import annotations

import pytest

from nbcarbon.errors import RegionError
from nbcarbon.intensity import lookup
from nbcarbon.whatif import (
    G_PER_LB,
    STRUBELL_LBS_PER_KWH,
    STRUBELL_PUE,
    EstimateError,
    HardwareError,
    estimate,
    find_hardware,
    hardware_presets,
)

# Strubell, Ganesh and McCallum (2019), "Energy and Policy Considerations for Deep Learning in
# NLP", Table 3: model, hardware, power (W, total), hours, kWh-PUE, CO2e (lbs).
STRUBELL_TABLE_3 = [
    ("Transformer base", "P100x8", 1415.78, 12, 27, 26),
    ("Transformer big", "P100x8", 1515.43, 84, 201, 192),
    ("ELMo", "P100x3", 517.66, 336, 275, 262),
    ("BERT base", "V100x64", 12041.51, 79, 1507, 1438),
    ("NAS", "P100x8", 1515.43, 274120, 656347, 626155),
]


@pytest.mark.parametrize(("model", "hardware", "power_w", "hours", "kwh", "lbs"), STRUBELL_TABLE_3)
def test_reproduces_strubell_2019_table_3_within_one_percent(
        model: str, hardware: str, power_w: float, hours: float, kwh: float, lbs: float) -> None:
    e = estimate(power_w=power_w, hours=hours, pue=STRUBELL_PUE, lbs_per_kwh=STRUBELL_LBS_PER_KWH)
    # The published figures are rounded to whole units (27 kWh is 26.84): allow that rounding
    # or 1%, whichever is larger. BERT base is 0.3% off in the paper itself (1503 vs 1507 kWh).
    assert e.energy_kwh == pytest.approx(kwh, rel=0.01, abs=0.5), model
    assert e.co2e_lbs == pytest.approx(lbs, rel=0.01, abs=0.5), model
    assert e.co2e_g == pytest.approx(e.co2e_lbs * G_PER_LB)
    assert e.it_energy_kwh == pytest.approx(power_w * hours / 1000)


def test_transformer_big_headline_numbers() -> None:
    e = estimate(power_w=1515.43, hours=84, pue=1.58, lbs_per_kwh=0.954)
    assert round(e.energy_kwh) == 201 and round(e.co2e_lbs) == 192
    assert "191.9 lbs" in e.text() and "201.1 kWh" in e.text()


def test_hardware_preset_times_count_priced_in_a_region() -> None:
    e = estimate(hardware="a100", count=8, hours=24, region="SE", pue=1.1)
    se = lookup("SE")
    assert e.power_w == 3200.0 and e.hardware == (("A100 SXM4", 8, 400.0),)
    assert e.energy_kwh == pytest.approx(3200 * 24 * 1.1 / 1000)
    assert e.co2e_g == pytest.approx(e.energy_kwh * se.g_per_kwh)
    assert e.intensity_source.startswith("SE Sweden")


def test_mixed_hardware_with_load_and_an_intensity() -> None:
    e = estimate(hardware={"V100": 8, "Xeon Platinum 8180": 2}, load=0.5, hours=10, g_per_kwh=400)
    assert e.power_w == pytest.approx((8 * 300 + 2 * 205) * 0.5)
    assert e.co2e_g == pytest.approx(e.power_w * 10 / 1000 * 400)
    assert "load 0.5" in e.text()


def test_sweden_against_poland_for_the_same_run() -> None:
    se = estimate(hardware="H100", count=4, hours=100, region="SE")
    pl = estimate(hardware="H100", count=4, hours=100, region="PL")
    assert se.energy_kwh == pl.energy_kwh
    assert pl.co2e_g / se.co2e_g == pytest.approx(lookup("PL").g_per_kwh / lookup("SE").g_per_kwh)


def test_no_intensity_given_uses_the_world_average_and_says_so() -> None:
    e = estimate(power_w=100, hours=1)
    assert e.g_per_kwh == lookup("WORLD").g_per_kwh and "no region given" in e.intensity_source


def test_presets_table_is_sane() -> None:
    presets = hardware_presets()
    names = {hw.name for hw in presets}
    assert {"V100 SXM2", "P100 SXM2", "A100 SXM4", "H100 SXM5", "L4", "T4", "TPU v2", "TPU v3"} <= names
    assert {hw.kind for hw in presets} == {"gpu", "cpu", "tpu"}
    for hw in presets:
        assert 10 <= hw.watts <= 1000 and hw.source and 2010 <= hw.year <= 2030
    rated = {"V100 SXM2": 300, "P100 SXM2": 300, "A100 SXM4": 400, "H100 SXM5": 700, "L4": 72, "T4": 70}
    for name, watts in rated.items():
        assert find_hardware(name).watts == watts
    assert find_hardware("tpu-v3").name == "TPU v3" and find_hardware("Tesla V100").name == "V100 SXM2"
    assert all(hw.kind == "cpu" for hw in hardware_presets("cpu"))


def test_unknown_hardware_names_close_presets() -> None:
    with pytest.raises(HardwareError, match="A100 SXM4") as info:
        estimate(hardware="A10O", hours=1)
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"hours": 1}, "either power_w"),
    ({"hours": 1, "power_w": 10, "hardware": "T4"}, "either power_w"),
    ({"hours": -1, "power_w": 10}, "hours"),
    ({"hours": 1, "power_w": float("nan")}, "power_w"),
    ({"hours": 1, "power_w": 10, "count": 2}, "count and load"),
    ({"hours": 1, "hardware": "T4", "count": 0}, "whole number"),
    ({"hours": 1, "hardware": "T4", "load": 1.5}, "load"),
    ({"hours": 1, "hardware": {}}, "empty"),
    ({"hours": 1, "power_w": 10, "region": "SE", "g_per_kwh": 5}, "one of"),
    ({"hours": 1, "power_w": 10, "pue": 5}, "pue"),
])
def test_bad_inputs_are_clear_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        estimate(**kwargs)


def test_unknown_region_is_a_region_error() -> None:
    with pytest.raises(RegionError, match="Sweden"):
        estimate(power_w=10, hours=1, region="Swedn")
    with pytest.raises(EstimateError):
        estimate(power_w=10, hours=1, lbs_per_kwh=-1)
