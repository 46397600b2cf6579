"""The footprint record (schema 1): pure data and pure arithmetic, no hardware and no IPython.

Energy per device in joules is the measured truth; CO2e is derived from it with the PUE and the
region's intensity, so :meth:`Footprint.repriced` can price the same energy for another grid at
any time without touching the measurement.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import product
from operator import itemgetter

from .errors import RecordError
from .meters.base import COMPONENTS, METHOD_KIND, Channel
from .sampler import Reading

TYPE_CHECKING = False  # no ``typing`` at import (see nbcarbon/session.py)
if TYPE_CHECKING:
    from typing import Any

SCHEMA = 1
#: Where a record lives in a notebook output: ``output["metadata"][METADATA_KEY]``.
METADATA_KEY = "nbcarbon"
STATUSES = ("ok", "error", "interrupted")
ATTRIBUTIONS = ("machine", "process", "share")
J_PER_KWH = 3.6e6


def co2e_g(energy_j: float, pue: float, g_per_kwh: float) -> float:
    """Grams of CO2e for ``energy_j`` of IT energy in a facility of ``pue`` on a grid of ``g_per_kwh``."""
    return energy_j / J_PER_KWH * pue * g_per_kwh


#: What a share of a machine-wide counter was split by (``Component.share``): the window's
#: process tree's part of the machine's busy CPU time, of the GPU's sampled utilisation, or of
#: the processes holding the GPU when none was sampled busy.
SHARE_BASES = ("cpu-time", "gpu-utilization", "gpu-processes")


@dataclass(frozen=True)
class Share:
    """How a machine-wide component was split: the cell is charged ``fraction`` of
    ``machine_energy_j`` (the counter's energy over the window), by ``basis``.

    Kept in the record beside the charged energy so a reader can see both figures and re-split
    nothing: the charged energy is what every total adds.
    """

    basis: str
    fraction: float
    machine_energy_j: float

    def to_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, "fraction": self.fraction,
                "machine_energy_j": self.machine_energy_j}


@dataclass(frozen=True)
class Component:
    """The energy of one component of one device over the window, and how it was obtained.

    ``share`` is set when ``energy_j`` is the cell's part of a machine-wide counter
    (``attribution: "share"``); ``None`` when it is the counter's whole energy or a model's.
    """

    component: str
    device: str
    method: str
    energy_j: float
    mean_power_w: float
    share: Share | None = None

    @property
    def kind(self) -> str:
        """``measured``, ``sampled`` or ``estimated``: what the readout says about this number."""
        return METHOD_KIND[self.method]

    def to_dict(self) -> dict[str, Any]:
        out = {"component": self.component, "device": self.device, "method": self.method,
               "energy_j": self.energy_j, "mean_power_w": self.mean_power_w}
        if self.share is not None:
            out["share"] = self.share.to_dict()
        return out


@dataclass(frozen=True)
class PricedRegion:
    """The region a record is priced in, as stored in the record (``chosen_by`` says why this one)."""

    code: str
    name: str
    g_per_kwh: float
    year: int | None
    source: str
    basis: str
    chosen_by: str


@dataclass(frozen=True)
class Footprint:
    """One measured window (a cell, a ``track()`` block): the record embedded in notebooks."""

    id: str
    cell_id: str | None
    label: str | None
    execution_count: int | None
    started_at: str
    duration_s: float
    status: str
    components: tuple[Component, ...]
    energy_j: float
    pue: float
    region: PricedRegion
    co2e_g: float
    attribution: str
    warnings: tuple[str, ...] = ()
    nbcarbon_version: str = ""
    kind: str = "cell"
    schema: int = SCHEMA
    #: The enclosing window's record id (a ``track()`` or ``epochs()`` inside a measured cell, a
    #: cell run by a cell); ``None`` at top level. See :func:`top_level`.
    parent_id: str | None = None
    #: A loop's iterations, compactly (``nbcarbon.epochs``): not one record each in the notebook.
    iterations: "Iterations | None" = None

    def repriced(self, region: PricedRegion | None = None, pue: float | None = None) -> "Footprint":
        """The same energy priced for another region and/or PUE; the measurement is untouched."""
        region = region or self.region
        pue = self.pue if pue is None else pue
        return replace(
            self, region=region, pue=pue, co2e_g=co2e_g(self.energy_j, pue, region.g_per_kwh)
        )

    def energy_by_component(self) -> dict[str, float]:
        """Joules per component name (cpu, dram, gpu, memory), summed over devices."""
        out: dict[str, float] = {}
        for c in self.components:
            out[c.component] = out.get(c.component, 0.0) + c.energy_j
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of SPEC section 4 (built by hand: ``asdict`` deep-copies, and this
        runs on every cell)."""
        r = self.region
        return {
            "schema": self.schema, "kind": self.kind, "id": self.id, "cell_id": self.cell_id,
            "label": self.label, "execution_count": self.execution_count,
            "started_at": self.started_at, "duration_s": self.duration_s, "status": self.status,
            "components": [
                {"component": c.component, "device": c.device, "method": c.method,
                 "energy_j": c.energy_j, "mean_power_w": c.mean_power_w}
                if c.share is None else c.to_dict()
                for c in self.components
            ],
            "energy_j": self.energy_j, "pue": self.pue,
            "region": {"code": r.code, "name": r.name, "g_per_kwh": r.g_per_kwh, "year": r.year,
                       "source": r.source, "basis": r.basis, "chosen_by": r.chosen_by},
            "co2e_g": self.co2e_g, "attribution": self.attribution,
            "warnings": list(self.warnings), "nbcarbon_version": self.nbcarbon_version,
            "parent_id": self.parent_id,
            **({"iterations": self.iterations.to_dict()} if self.iterations is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Footprint":
        """Validate a record read from a notebook; raise :class:`RecordError` saying what is wrong.

        Unknown extra fields are ignored (a newer nbcarbon may add some); a missing or mistyped
        field, or a schema newer than this one, is an error.

        Why two passes: a report reads tens of thousands of records, nearly all valid. A record
        as nbcarbon writes it is taken by :func:`_valid_record`, a few checks inline; anything
        it does not take, it leaves to the field-by-field checks below, which name what is wrong.
        """
        fast = _valid_record(cls, d)
        if fast is not None:
            return fast
        if not isinstance(d, Mapping):
            raise RecordError(f"a record must be a JSON object, not {type(d).__name__}")
        schema = d.get("schema")
        if type(schema) is not int:
            raise RecordError("record has no integer 'schema' field")
        if schema > SCHEMA:
            raise RecordError(
                f"record has schema {_short(schema)}, newer than this nbcarbon understands ({SCHEMA}); "
                "upgrade nbcarbon to read it"
            )
        if d.get("kind") != "cell":
            raise RecordError(f"record kind must be 'cell', not {_short(d.get('kind'))}")
        region = _region_from(_field(d, "region", Mapping))
        comps = []
        for i, c in enumerate(_field(d, "components", list)):
            try:
                comps.append(_component_from(c))
            except RecordError as exc:
                raise RecordError(f"record component {i}: {exc}") from None
        status = _field(d, "status", str)
        if status not in STATUSES:
            raise RecordError(f"record status must be one of {STATUSES}, not {_short(status)}")
        warnings = _field(d, "warnings", list)
        if not all(isinstance(w, str) for w in warnings):
            raise RecordError("record 'warnings' must be a list of strings")
        execution_count = _field(d, "execution_count", int, optional=True)
        parent_id = _field(d, "parent_id", str, optional=True) if "parent_id" in d else None
        iterations = Iterations.from_dict(d["iterations"]) if d.get("iterations") is not None else None
        return cls(
            id=_field(d, "id", str),
            cell_id=_field(d, "cell_id", str, optional=True),
            label=_field(d, "label", str, optional=True),
            execution_count=execution_count,
            started_at=_field(d, "started_at", str),
            duration_s=_number(d, "duration_s"),
            status=status,
            components=tuple(comps),
            energy_j=_number(d, "energy_j"),
            pue=_number(d, "pue"),
            region=region,
            co2e_g=_number(d, "co2e_g"),
            attribution=_field(d, "attribution", str),
            warnings=tuple(warnings),
            nbcarbon_version=str(d.get("nbcarbon_version", "")),
            parent_id=parent_id,
            iterations=iterations,
        )


#: Significant digits kept per iteration in :class:`Iterations` (far below any meter's accuracy).
_SERIES_DIGITS = 6


@dataclass(frozen=True)
class Iterations:
    """The iterations of a loop record, as two parallel series instead of one record each.

    Why compact: a 1,000-epoch loop must not put 1,000 full records (about 1 kB each) into the
    notebook; the loop's own record is the measurement that counts, and these series keep what
    plots and reports need per iteration. ``statuses`` lists only the iterations that did not end
    ``ok`` (index -> status), since nearly all do.
    """

    label: str
    duration_s: tuple[float, ...]
    energy_j: tuple[float, ...]
    statuses: tuple[tuple[int, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label,
                "duration_s": [float(f"{v:.{_SERIES_DIGITS}g}") for v in self.duration_s],
                "energy_j": [float(f"{v:.{_SERIES_DIGITS}g}") for v in self.energy_j],
                "statuses": {str(i): s for i, s in self.statuses}}

    @classmethod
    def from_dict(cls, d: Any) -> "Iterations":
        if not isinstance(d, Mapping):
            raise RecordError("record field 'iterations' must be a JSON object")
        series = []
        for name in ("duration_s", "energy_j"):
            values = _field(d, name, list)
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) and v >= 0 for v in values):
                raise RecordError(f"record iterations {name!r} must be finite numbers >= 0")
            series.append(tuple(float(v) for v in values))
        if len(series[0]) != len(series[1]):
            raise RecordError("record iterations: 'duration_s' and 'energy_j' differ in length")
        statuses = d.get("statuses") or {}
        if not isinstance(statuses, Mapping) or not all(
                # isascii: "²".isdigit() is true, and int("²") raises ValueError, not RecordError
                isinstance(k, str) and k.isascii() and k.isdigit() and v in STATUSES
                for k, v in statuses.items()):
            raise RecordError("record iterations 'statuses' must map indexes to statuses")
        return cls(str(d.get("label", "iteration")), series[0], series[1],
                   tuple(sorted((int(k), v) for k, v in statuses.items())))


def top_level(records: Iterable[Footprint], open_ids: Container[str] = ()) -> list[Footprint]:
    """The records that totals add up: each window counted once, never inside its parent too.

    A record is top level when it has no parent, or when its parent is neither among
    ``records`` nor an open window (``open_ids``): a ``track()`` inside a cell that is still
    running is left out until the cell's own record arrives and covers it, and a saved notebook whose
    cell readout was cleared still counts its nested windows. Every total (session, summary,
    dashboard, report, history, the run table, compare) goes through this one rule. Linear.
    """
    records = list(records)
    ids = {fp.id for fp in records}
    return [fp for fp in records if fp.parent_id is None or fp.parent_id == fp.id
            or (fp.parent_id not in ids and fp.parent_id not in open_ids)]


def outside_open(records: Iterable[Footprint], open_ids: Container[str]) -> list[Footprint]:
    """The records not inside a window still open (through any chain of parents among them).

    Why: a table of finished cells drawn while a cell runs (``%carbon summary`` inside a
    measured cell) must leave that cell's nested windows out, or the one it shows later would
    not add up with it; the running cell's own record will cover them.
    """
    records = list(records)
    if not open_ids:
        return records
    parents = {fp.id: fp.parent_id for fp in records}
    inside: dict[str, bool] = {}

    def within(ident: str | None) -> bool:
        chain: dict[str, None] = {}  # the ids walked, to remember their answer (and stop a cycle)
        result = False
        while ident is not None:
            if ident in inside:
                result = inside[ident]
                break
            if ident in open_ids:
                result = True
                break
            if ident not in parents or ident in chain:
                break
            chain[ident] = None
            ident = parents[ident]
        for walked in chain:
            inside[walked] = result
        return result

    return [fp for fp in records if not within(fp.parent_id)]


def tree_order(records: Iterable[Footprint]) -> list[tuple[int, Footprint]]:
    """``(depth, record)`` pairs: each top-level record followed by its nested ones, indented.

    Records close child-first (a window inside a cell ends before the cell), so the order of
    ``records`` is not the order to read them in; tables show the parent, then its children in
    the order they started. Linear in the number of records.
    """
    records = list(records)
    ids = {fp.id for fp in records}
    children: dict[str, list[Footprint]] = {}
    roots = []
    for fp in records:
        if fp.parent_id is not None and fp.parent_id in ids and fp.parent_id != fp.id:
            children.setdefault(fp.parent_id, []).append(fp)
        else:
            roots.append(fp)
    out: list[tuple[int, Footprint]] = []
    seen: set[str] = set()
    stack = [(0, fp) for fp in reversed(roots)]
    while stack:
        depth, fp = stack.pop()
        if fp.id in seen:  # a cycle in a hand-edited file: show each record once
            continue
        seen.add(fp.id)
        out.append((depth, fp))
        stack.extend((depth + 1, child) for child in reversed(children.get(fp.id, ())))
    if len(out) < len(records):  # only a hand-made cycle of parents leaves records unreached
        out.extend((0, fp) for fp in records if fp.id not in seen)
    return out


def _field(d: Mapping[str, Any], name: str, kind: type, optional: bool = False) -> Any:
    if name not in d:
        raise RecordError(f"record is missing the field {name!r}")
    value = d[name]
    if value is None and optional:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        expected = "a number" if isinstance(kind, tuple) else kind.__name__
        raise RecordError(f"record field {name!r} must be {expected}, not {type(value).__name__}")
    return value


def _short(value: object, limit: int = 60) -> str:
    """A value read from a file, for an error message: its repr, cut to ``limit`` characters.

    The value may be 100 kB of text or a structure nested thousands deep; the message stays one
    short line (``reprlib`` also keeps deep nesting from recursing).
    """
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(d: Mapping[str, Any], name: str) -> float:
    value = _field(d, name, (int, float))  # type: ignore[arg-type]
    try:
        number = float(value)
    except OverflowError:  # a JSON integer with hundreds of digits
        number = math.inf
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise RecordError(
            f"record field {name!r} must be a finite number >= 0, not {_short(value)}")
    return number


def _component_from(c: Any) -> Component:
    if not isinstance(c, Mapping):
        raise RecordError("each component must be a JSON object")
    comp = _field(c, "component", str)
    method = _field(c, "method", str)
    if comp not in COMPONENTS:
        raise RecordError(f"component must be one of {COMPONENTS}, not {_short(comp)}")
    if method not in METHOD_KIND:
        raise RecordError(f"component method must be one of {tuple(METHOD_KIND)}, not {_short(method)}")
    share = _share_from(c["share"]) if c.get("share") is not None else None
    return Component(comp, _field(c, "device", str), method, _number(c, "energy_j"),
                     _number(c, "mean_power_w"), share)


def _share_from(d: Any) -> Share:
    if not isinstance(d, Mapping):
        raise RecordError("component 'share' must be a JSON object")
    basis = _field(d, "basis", str)
    if basis not in SHARE_BASES:
        raise RecordError(f"share basis must be one of {SHARE_BASES}, not {_short(basis)}")
    fraction = _number(d, "fraction")
    if fraction > 1.0:
        raise RecordError(f"share fraction must be from 0 to 1, not {_short(d['fraction'])}")
    return Share(basis, fraction, _number(d, "machine_energy_j"))


def _region_from(r: Mapping[str, Any]) -> PricedRegion:
    year = _field(r, "year", int, optional=True)
    return PricedRegion(
        code=_field(r, "code", str), name=_field(r, "name", str),
        g_per_kwh=_number(r, "g_per_kwh"), year=year, source=_field(r, "source", str),
        basis=_field(r, "basis", str), chosen_by=_field(r, "chosen_by", str),
    )


def instance_maker(cls: type) -> Callable[..., Any]:
    """A function taking every field of the frozen dataclass ``cls``, in order, and returning
    the instance ``cls(...)`` would, without running its ``__init__``.

    Why: a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, a
    call per field (19 for a :class:`Footprint`, 13 for a report row); building the 200,000
    objects of 50,000 records that way took 0.3 s, this takes half of it. It writes the same
    fields into the instance's ``__dict__`` directly: equal, hashed and shown the same, with its
    fields in the same order. Only for a plain frozen dataclass, whose ``__init__`` does nothing else: no
    ``__post_init__``, no slots, no ``InitVar``, every field set by ``__init__`` (checked here).
    Every field is required, defaults included, so a field added to ``cls`` cannot be left out.
    """
    params = getattr(cls, "__dataclass_params__", None)
    names = [f.name for f in fields(cls)]
    if (params is None or not params.frozen or hasattr(cls, "__post_init__")
            or "__slots__" in cls.__dict__ or len(names) != len(cls.__dataclass_fields__)
            or not all(f.init for f in fields(cls))):
        raise TypeError(f"{cls.__name__} is not a plain frozen dataclass")
    if any(name.startswith("_maker_") for name in names):
        raise TypeError(f"{cls.__name__} has a field named like the maker's own variables")
    # The source is made of field names alone (identifiers): nothing from outside goes in.
    source = (f"def make({', '.join(names)}):\n"
              "    _maker_self = _maker_new(_maker_cls)\n    _maker_dict = _maker_self.__dict__\n"
              + "".join(f"    _maker_dict[{name!r}] = {name}\n" for name in names)
              + "    return _maker_self\n")
    namespace: dict[str, Any] = {"_maker_new": object.__new__, "_maker_cls": cls}
    exec(source, namespace)  # as dataclasses writes the __init__ it adds
    make = namespace["make"]
    make.__qualname__ = f"instance_maker.<{cls.__name__}>"
    return make


#: Every field in order, no frozen ``__init__``: for the paths that make records by the thousand
#: (a report's reading, a window's end). See :func:`instance_maker`.
make_footprint = instance_maker(Footprint)
make_component = instance_maker(Component)
make_share = instance_maker(Share)

#: The largest finite float: a JSON number above it is infinity, which no record field accepts.
_MAX_FLOAT = 1.7976931348623157e308
#: The regions :func:`_valid_record` has read, by their fields: a notebook's records are priced
#: in one or two, so they share one (immutable) object each, not 50,000. Kept small.
_REGIONS: dict[tuple[Any, ...], PricedRegion] = {}


#: The fields :func:`_written_record` reads from a record, a region, a component and a share, in
#: the order it reads them (a region's in the order of :class:`PricedRegion`'s fields, so that
#: its values are its key in _REGIONS).
_RECORD_FIELDS = ("schema", "kind", "status", "id", "cell_id", "label", "execution_count",
                  "started_at", "attribution", "warnings", "components", "region", "duration_s",
                  "energy_j", "pue", "co2e_g")
_REGION_FIELDS = ("code", "name", "g_per_kwh", "year", "source", "basis", "chosen_by")
_COMPONENT_FIELDS = ("component", "device", "method", "energy_j", "mean_power_w")
_SHARE_FIELDS = ("basis", "fraction", "machine_energy_j")
#: The types (``type(value)``, exactly) the values of a record and of a region may have there.
_RECORD_TYPES = frozenset(product((int,), (str,), (str,), (str,), (str, type(None)), (str, type(None)),
                                  (int, type(None)), (str,), (str,), (list,), (list,), (dict,),
                                  (float,), (float,), (float,), (float,)))
_REGION_TYPES = frozenset(product((str,), (str,), (float,), (int, type(None)), (str,), (str,), (str,)))
_RECORD_VALUES = itemgetter(*_RECORD_FIELDS)
_REGION_VALUES = itemgetter(*_REGION_FIELDS)
_COMPONENT_VALUES = itemgetter(*_COMPONENT_FIELDS)
_SHARE_VALUES = itemgetter(*_SHARE_FIELDS)
#: The one ``str`` of each status, component, method and share basis: :func:`_written_record`
#: looks each value up here (as ``in`` would) and keeps the one found, so that the records share
#: these few objects instead of each holding a dozen strings of its own, parsed from its text.
_STATUS_OF = {s: s for s in STATUSES}
_COMPONENT_OF = {c: c for c in COMPONENTS}
_METHOD_OF = {m: m for m in METHOD_KIND}
_BASIS_OF = {b: b for b in SHARE_BASES}


def _written_record(d: dict[str, Any]) -> Footprint | None:
    """The :class:`Footprint` of ``d``, a plain dict, when it is a record as nbcarbon writes it;
    else ``None`` (then :func:`_valid_record` reads it on).

    Why a third reader: a report of 50,000 records spent most of its reading in the interpreter,
    a few bytecodes per check of :func:`_valid_record`. A record as written (every field there,
    each of one exact type, floats for numbers, components of their five fields and a share,
    no iterations) is checked here with fewer: each dict's values fetched by one
    ``itemgetter``, the types of a record's values compared as one tuple, the records and their
    parts made by :func:`instance_maker`. The checks are those of :func:`_valid_record`, on
    fewer shapes (whole numbers, iterations, other fields in a component go there), and give
    the record it gives: the same fields, the same shared region. A missing field raises
    ``KeyError``, which :func:`_valid_record` takes as its own (it reads the same fields).
    """
    values = _RECORD_VALUES(d)
    if tuple(map(type, values)) not in _RECORD_TYPES:
        return None
    (schema, kind, status, ident, cell_id, label, count, started_at, attribution, warnings,
     comps, r, duration_s, energy_j, pue, co2e) = values
    status = _STATUS_OF.get(status)
    if not (schema <= SCHEMA and kind == "cell" and status is not None
            and 0.0 <= duration_s <= _MAX_FLOAT and 0.0 <= energy_j <= _MAX_FLOAT
            and 0.0 <= pue <= _MAX_FLOAT and 0.0 <= co2e <= _MAX_FLOAT
            and (not warnings or all([type(w) is str for w in warnings]))):
        return None
    version, parent_id = d.get("nbcarbon_version", ""), d.get("parent_id")
    if (type(version) is not str or (parent_id is not None and type(parent_id) is not str)
            or d.get("iterations") is not None):
        return None
    key = _REGION_VALUES(r)
    # Types and range first: 2024 and 2024.0 are equal keys, and so are NaNs of one object.
    if tuple(map(type, key)) not in _REGION_TYPES or not 0.0 <= key[2] <= _MAX_FLOAT:
        return None
    region = _REGIONS.get(key) if key[2] else None  # 0.0 and -0.0 are equal keys
    if region is None:
        if len(_REGIONS) >= 64:
            _REGIONS.clear()
        region = _REGIONS[key] = PricedRegion(*key)
    components = []
    for c in comps:
        if type(c) is not dict:
            return None
        name, device, method, joules, watts = _COMPONENT_VALUES(c)
        if not (type(name) is type(device) is type(method) is str
                and type(joules) is type(watts) is float and 0.0 <= joules <= _MAX_FLOAT
                and 0.0 <= watts <= _MAX_FLOAT):
            return None
        name, method = _COMPONENT_OF.get(name), _METHOD_OF.get(method)
        if name is None or method is None:
            return None
        share = None
        if len(c) != 5:  # a share, or a field this reader leaves to _valid_record
            share = c.get("share", c)
            if len(c) != 6 or share is c:
                return None
            if share is not None:
                if type(share) is not dict:
                    return None
                basis, fraction, machine = _SHARE_VALUES(share)
                basis = _BASIS_OF.get(basis) if type(basis) is str else None
                if not (basis is not None and type(fraction) is float
                        and 0.0 <= fraction <= 1.0 and type(machine) is float
                        and 0.0 <= machine <= _MAX_FLOAT):
                    return None
                share = make_share(basis, fraction, machine)
        components.append(make_component(name, device, method, joules, watts, share))
    return make_footprint(ident, cell_id, label, count, started_at, duration_s, status,
                           tuple(components), energy_j, pue, region, co2e, attribution,
                           tuple(warnings), version, "cell", SCHEMA, parent_id, None)


def _valid_record(cls: type[Footprint], d: Any) -> Footprint | None:
    """The record ``d``, when it passes every check of :meth:`Footprint.from_dict`; else ``None``.

    Why: ``from_dict`` calls a helper per field (about 40 calls a record), which was most of
    reading 50,000 records. Here a valid record takes few calls and each check is strict (exact
    types, plain dicts and lists), so whatever passes here passes there, into an equal record;
    anything else (a wrong field, an int subclass, a Mapping that is not a dict) returns
    ``None`` and goes through ``from_dict``'s own checks, which say what is wrong. A record as
    nbcarbon writes it is read by :func:`_written_record` first, with fewer steps still.
    """
    try:
        if type(d) is not dict:
            return None
        if cls is Footprint:
            fast = _written_record(d)
            if fast is not None:
                return fast
        schema, status, r, comps = d["schema"], d["status"], d["region"], d["components"]
        if not (type(schema) is int and schema <= SCHEMA and d["kind"] == "cell"
                and status in STATUSES and type(r) is dict and type(comps) is list):
            return None
        ident, started_at, attribution = d["id"], d["started_at"], d["attribution"]
        version = d.get("nbcarbon_version", "")
        code, name, source, basis, chosen_by = (
            r["code"], r["name"], r["source"], r["basis"], r["chosen_by"])
        cell_id, label, parent_id = d["cell_id"], d["label"], d.get("parent_id")
        count, year, warnings = d["execution_count"], r["year"], d["warnings"]
        if not (str is type(ident) is type(started_at) is type(attribution) is type(version)
                is type(code) is type(name) is type(source) is type(basis) is type(chosen_by)
                and (cell_id is None or type(cell_id) is str)
                and (label is None or type(label) is str)
                and (parent_id is None or type(parent_id) is str)
                and (count is None or type(count) is int) and (year is None or type(year) is int)
                and type(warnings) is list and (not warnings or all(type(w) is str for w in warnings))):
            return None
        duration_s, energy_j, pue, co2e, g_per_kwh = numbers = (
            d["duration_s"], d["energy_j"], d["pue"], d["co2e_g"], r["g_per_kwh"])
        if not (float is type(duration_s) is type(energy_j) is type(pue) is type(co2e)
                is type(g_per_kwh) and 0.0 <= duration_s <= _MAX_FLOAT
                and 0.0 <= energy_j <= _MAX_FLOAT and 0.0 <= pue <= _MAX_FLOAT
                and 0.0 <= co2e <= _MAX_FLOAT and 0.0 <= g_per_kwh <= _MAX_FLOAT):
            for v in numbers:  # also whole numbers (e.g. "energy_j": 0), read as _number does
                if not (type(v) in (int, float) and 0 <= v <= _MAX_FLOAT):
                    return None
            duration_s, energy_j, pue, co2e, g_per_kwh = map(float, numbers)
        components = []
        for c in comps:
            if type(c) is not dict:
                return None
            component, device, method = c["component"], c["device"], c["method"]
            joules, watts, share = c["energy_j"], c["mean_power_w"], c.get("share")
            if not (str is type(component) is type(device) is type(method)
                    and component in COMPONENTS and method in METHOD_KIND
                    and type(joules) is float and 0.0 <= joules <= _MAX_FLOAT
                    and type(watts) is float and 0.0 <= watts <= _MAX_FLOAT):
                return None
            components.append(make_component(component, device, method, joules, watts,
                                              None if share is None else _share_from(share)))
        key = (code, name, g_per_kwh, year, source, basis, chosen_by)
        region = _REGIONS.get(key) if g_per_kwh else None  # 0.0 and -0.0 are equal keys
        if region is None:
            if len(_REGIONS) >= 64:
                _REGIONS.clear()
            region = _REGIONS[key] = PricedRegion(
                code=code, name=name, g_per_kwh=g_per_kwh, year=year, source=source,
                basis=basis, chosen_by=chosen_by)
        iterations = d.get("iterations")
        if iterations is not None:
            iterations = Iterations.from_dict(iterations)
        if cls is not Footprint:  # a subclass may have an __init__ of its own
            return cls(
                id=ident, cell_id=cell_id, label=label, execution_count=count,
                started_at=started_at, duration_s=duration_s, status=status,
                components=tuple(components), energy_j=energy_j, pue=pue, region=region,
                co2e_g=co2e, attribution=attribution, warnings=tuple(warnings),
                nbcarbon_version=version, parent_id=parent_id, iterations=iterations,
            )
        return make_footprint(ident, cell_id, label, count, started_at, duration_s, status,
                               tuple(components), energy_j, pue, region, co2e, attribution,
                               tuple(warnings), version, "cell", SCHEMA, parent_id, iterations)
    except (KeyError, TypeError, RecordError):  # missing, unhashable or bad: from_dict says which
        return None


@dataclass
class Measured:
    """Components of one window plus the warnings that say what is missing or partial."""

    components: list[Component] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    attribution: str = "process"


def measure(
    channels: Sequence[Channel],
    begin: Sequence[Reading],
    end: Sequence[Reading],
    duration_s: float,
    errors_during: Sequence[int] = (),
) -> Measured:
    """Turn boundary readings into components, saying honestly what could not be measured.

    A channel whose end read failed keeps the energy up to its last good reading, with a warning
    naming how much of the window that covers. A channel whose read at the window's start failed
    is left out with a warning: its last good total is older than the window, and counting from
    it would charge the window with energy spent before it (an outage of hours, all on one
    cell). A channel never read in the window is left out likewise; it is not counted as zero,
    nor as measured. Readings a counter refused as implausible (see
    :class:`~nbcarbon.meters.base.Anomalies`) are named too: they cost no energy when good
    readings follow, but a reader must be able to tell a clean number from a repaired one.
    """
    out = Measured()
    machine = False
    for i, ch in enumerate(channels):
        b, e = begin[i], end[i]
        name = f"{ch.component} {ch.device} ({ch.method})"
        if b.total_j is None or e.total_j is None:
            why = (e.error or b.error or "no reading")
            out.warnings.append(f"{name} not measured: {why}")
            continue
        if b.error is not None:
            out.warnings.append(f"{name} not measured: it could not be read when the window "
                                f"opened ({b.error}), and its last good reading is older than "
                                "the window")
            continue
        energy_j = max(0.0, e.total_j - b.total_j)
        covered_s = max(0.0, e.t_s - b.t_s)
        if e.error is not None and covered_s <= 0.0:
            out.warnings.append(f"{name} not measured: no reading succeeded after the window "
                                f"opened ({e.error})")
            continue
        if e.error is not None:
            out.warnings.append(
                f"{name} partly measured: readings failed ({e.error}); "
                f"energy covers {min(covered_s, duration_s):.2f} s of {duration_s:.2f} s"
            )
        n_err = errors_during[i] if i < len(errors_during) else 0
        if n_err and e.error is None:
            out.warnings.append(f"{name}: {n_err} background read(s) failed during the window")
        out.warnings.extend(e.anomalies.warnings_since(b.anomalies, name))
        if b.anomalies.held and b.error is None:
            out.warnings.append(
                f"{name}: the reading at the window's start was implausible and skipped; energy "
                f"is counted from the last good reading, {max(0.0, covered_s - duration_s):.2f} s "
                "before the window"
            )
        if e.anomalies.held and e.error is None:
            out.warnings.append(
                f"{name} partly measured: the reading at the window's end was implausible and "
                f"skipped; energy covers {min(covered_s, duration_s):.2f} s of {duration_s:.2f} s"
            )
        if ch.caveat:
            out.warnings.append(f"{name}: {ch.caveat}")
        mean_w = energy_j / duration_s if duration_s > 0 else 0.0
        out.components.append(Component(ch.component, ch.device, ch.method, energy_j, mean_w))
        machine = machine or ch.attribution == "machine"
    out.attribution = "machine" if machine else "process"
    return out
