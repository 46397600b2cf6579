"""What-if energy and carbon of a run that is not on this machine: watts x hours x PUE x intensity.

``nbcarbon.estimate()`` lives here (a module named ``estimate`` would replace the package's
``estimate`` function with itself when imported).

For questions such as "what did that published model cost, and what would it cost in Sweden?".
Nothing is measured here; the numbers are only as good as the power figure, so the result says
where it came from. Pure: no hardware, no IPython.

Power is either an average draw you know (``power_w``: a measurement, or a paper's figure) or
a preset from ``nbcarbon/data/hardware.csv`` times a count. Presets are the vendors' rated power
(TDP or maximum board power), an upper bound: real training averages less, which is what
``load`` (the fraction of rated power drawn on average, default 1.0) is for. TPU figures are
chip TDPs from Jouppi et al. 2021 (ISCA, "Ten Lessons From Three Generations Shaped Google's
TPUv4i", Table 1); Google publishes none for TPU v4 and later, so they are not in the table.
A preset counts only its own chip: the host's CPU, memory and fans are not in a GPU's figure.

The formula is Strubell, Ganesh and McCallum (2019, "Energy and Policy Considerations for Deep
Learning in NLP", ACL), eq. 1 and 2: ``p_t = PUE * hours * watts / 1000`` kWh, and
``CO2e = p_t * intensity``. Their PUE (1.58) and intensity (0.954 lbs/kWh, the US average they
used) are :data:`STRUBELL_PUE` and :data:`STRUBELL_LBS_PER_KWH`, so their Table 3 can be
reproduced: ``estimate(power_w=1515.43, hours=84, pue=STRUBELL_PUE,
lbs_per_kwh=STRUBELL_LBS_PER_KWH)`` gives 201 kWh and 192 lbs (Transformer big).
"""

from __future__ import annotations

import csv
import difflib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import NbcarbonError
from .settings import parse_pue

G_PER_LB = 453.59237
STRUBELL_PUE = 1.58
STRUBELL_LBS_PER_KWH = 0.954
KINDS = ("gpu", "cpu", "tpu")


class HardwareError(NbcarbonError, LookupError):
    """A hardware preset nbcarbon has no power figure for; the message names the closest ones."""

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0]) if self.args else ""


class EstimateError(NbcarbonError, ValueError):
    """Inputs to :func:`estimate` that do not make a calculation (missing, negative, both given)."""


@dataclass(frozen=True)
class Hardware:
    """One preset: rated power of one device, and where the figure comes from."""

    name: str
    kind: str
    watts: float
    basis: str
    source: str
    year: int


@dataclass(frozen=True)
class Estimate:
    """The result of :func:`estimate`. Energy includes the PUE; ``it_energy_kwh`` is before it."""

    energy_kwh: float
    co2e_g: float
    power_w: float
    hours: float
    pue: float
    g_per_kwh: float
    intensity_source: str
    hardware: tuple[tuple[str, int, float], ...]  # (preset name, count, watts each)
    load: float

    @property
    def co2e_lbs(self) -> float:
        return self.co2e_g / G_PER_LB

    @property
    def co2e_kg(self) -> float:
        return self.co2e_g / 1000

    @property
    def it_energy_kwh(self) -> float:
        return self.energy_kwh / self.pue

    def text(self) -> str:
        """A short account of the inputs and the result, for notebooks and terminals."""
        from .readout import format_mass

        if self.hardware:
            power = " + ".join(f"{n} x {name} ({w:g} W)" for name, n, w in self.hardware)
            if self.load != 1.0:
                power = f"({power}) x load {self.load:g}"
            power += f" = {self.power_w:.6g} W"
        else:
            power = f"{self.power_w:.6g} W"
        return (f"{power} for {self.hours:g} h x PUE {self.pue:g} = {self.energy_kwh:.4g} kWh; "
                f"x {self.g_per_kwh:.4g} g/kWh ({self.intensity_source}) = "
                f"{format_mass(self.co2e_g)} CO2e ({self.co2e_lbs:.4g} lbs)")

    def _repr_pretty_(self, printer: object, cycle: bool) -> None:  # IPython's display hook
        printer.text(self.text())  # type: ignore[attr-defined]


def _rows() -> list[dict[str, str]]:
    from importlib.resources import files

    package = __name__.rpartition(".")[0] or "nbcarbon"
    text = (files(package) / "data" / "hardware.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _key(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalnum() or c == "+")


@functools.cache
def _table() -> tuple[tuple[Hardware, ...], dict[str, Hardware]]:
    presets: list[Hardware] = []
    index: dict[str, Hardware] = {}
    for row in _rows():
        hw = Hardware(row["name"], row["kind"], float(row["watts"]), row["basis"], row["source"],
                      int(row["year"]))
        presets.append(hw)
        for text in [hw.name, *row["aliases"].split(";")]:
            if text and _key(text) not in index:
                index[_key(text)] = hw
    return tuple(presets), index


def hardware_presets(kind: str | None = None) -> list[Hardware]:
    """The shipped presets, optionally only one ``kind`` (gpu, cpu, tpu)."""
    if kind is not None and kind not in KINDS:
        raise EstimateError(f"kind must be one of {KINDS}, not {kind!r}")
    return [hw for hw in _table()[0] if kind is None or hw.kind == kind]


def find_hardware(name: str) -> Hardware:
    """The preset named ``name`` (any case, spaces and dashes ignored: "a100", "TPU-v3")."""
    presets, index = _table()
    found = index.get(_key(name)) if isinstance(name, str) else None
    if found is not None:
        return found
    close = difflib.get_close_matches(_key(str(name)), index.keys(), n=8, cutoff=0.5)
    names = list(dict.fromkeys(index[k].name for k in close))[:5]
    hint = f" Did you mean: {', '.join(names)}?" if names else ""
    raise HardwareError(f"No power figure for hardware {name!r}.{hint} Presets: "
                        f"{', '.join(hw.name for hw in presets)}; or give power_w.")


def _positive(value: object, name: str, allow_zero: bool = True) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise EstimateError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise EstimateError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, "
                            f"not {value!r}")
    return number


def _intensity(region: str | None, g_per_kwh: float | None,
               lbs_per_kwh: float | None) -> tuple[float, str]:
    given = [name for name, v in (("region", region), ("g_per_kwh", g_per_kwh),
                                  ("lbs_per_kwh", lbs_per_kwh)) if v is not None]
    if len(given) > 1:
        raise EstimateError(f"give one of region, g_per_kwh or lbs_per_kwh, not {' and '.join(given)}")
    from . import intensity

    if g_per_kwh is not None:
        return _positive(g_per_kwh, "g_per_kwh"), "given"
    if lbs_per_kwh is not None:
        lbs = _positive(lbs_per_kwh, "lbs_per_kwh")
        return lbs * G_PER_LB, f"given as {lbs:g} lbs/kWh"
    r = intensity.lookup(region) if region is not None else intensity.world()
    why = "" if region is not None else "; no region given"
    year = f" {r.year}" if r.year and str(r.year) not in r.source else ""
    return r.g_per_kwh, f"{r.code} {r.name}, {r.source}{year}, {r.basis}{why}"


def estimate(
    *,
    hours: float,
    power_w: float | None = None,
    hardware: str | Mapping[str, int] | None = None,
    count: int = 1,
    load: float = 1.0,
    pue: float = 1.0,
    region: str | None = None,
    g_per_kwh: float | None = None,
    lbs_per_kwh: float | None = None,
) -> Estimate:
    """Energy and CO2e of ``hours`` at an average power, priced in a region or at an intensity.

    Power: either ``power_w`` (average total draw in watts), or ``hardware`` as a preset name
    with ``count`` (``hardware="V100", count=8``) or a mapping of names to counts
    (``{"A100": 8, "EPYC 7763": 2}``), scaled by ``load`` (average share of rated power drawn,
    0 to 1). Intensity: ``region`` (any code ``%carbon regions`` lists), or ``g_per_kwh``, or
    ``lbs_per_kwh``; with none of them, the world average. ``pue`` from 1.0 to 3.0.
    Raises :class:`EstimateError`, :class:`HardwareError` or :class:`~nbcarbon.errors.RegionError`
    before computing anything when an input is wrong.
    """
    hours_ = _positive(hours, "hours")
    pue_ = parse_pue(pue, "pue")
    load_ = _positive(load, "load")
    if load_ > 1:
        raise EstimateError(f"load is the share of rated power drawn, from 0 to 1, not {load!r}")
    if (power_w is None) == (hardware is None):
        raise EstimateError("give either power_w (average watts) or hardware (a preset and a count)")
    used: tuple[tuple[str, int, float], ...] = ()
    if power_w is not None:
        if count != 1 or load != 1.0:
            raise EstimateError("count and load apply to hardware presets, not to power_w")
        watts = _positive(power_w, "power_w")
    else:
        counts = {hardware: count} if isinstance(hardware, str) else dict(hardware or {})
        if not counts:
            raise EstimateError("hardware is empty: name at least one preset")
        parts = []
        for name, n in counts.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise EstimateError(f"count of {name!r} must be a whole number >= 1, not {n!r}")
            hw = find_hardware(name)
            parts.append((hw.name, n, hw.watts))
        used = tuple(parts)
        watts = sum(n * w for _, n, w in used) * load_
    g, source = _intensity(region, g_per_kwh, lbs_per_kwh)
    energy_kwh = watts * hours_ * pue_ / 1000
    return Estimate(energy_kwh=energy_kwh, co2e_g=energy_kwh * g, power_w=watts, hours=hours_,
                    pue=pue_, g_per_kwh=g, intensity_source=source, hardware=used, load=load_)
