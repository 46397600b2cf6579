"""The shortcuts on a measured cell's path in a kernel say exactly what the long ways said.

Why: ``nbcarbon/shown.py`` finds the shell without ``IPython.get_ipython`` (a lazy module attribute
that runs three import statements on every readout) and keeps the publisher's attributes for the
message it sends; ``nbcarbon/readout.py`` formats a readout's title, duration, energy, CO2e and
region once for both renderings. None of it may change which shell, publisher or bytes are used.
"""

from __future__ import annotations

from html import escape
from typing import Any

import pytest

from nbcarbon import readout, shown
from nbcarbon.footprint import Component, Footprint, PricedRegion, Share

REGIONS = (PricedRegion("SE", "Sweden", 41.0, 2023, "Ember", "annual average", "env"),
           PricedRegion("X<&>", "A \"quoted\" & <b>", 250.5, None, "src 2023", "b&b", "magic"))


def _record(label: str | None, status: str, warnings: tuple[str, ...], region: PricedRegion,
            energy_j: float, count: int | None) -> Footprint:
    comps = (Component("cpu", "package-0", "rapl-counter", energy_j * 0.7, 24.0,
                       Share("cpu-time", 0.38, 40.0)),
             Component("memory", "<ram>", "memory-model", energy_j * 0.3, 0.4))
    return Footprint(
        id="0" * 32, cell_id=None, label=label, execution_count=count,
        started_at="2026-01-01T00:00:00+00:00", duration_s=4321.5 if count else 0.61,
        status=status, components=comps, energy_j=energy_j, pue=1.25, region=region,
        co2e_g=energy_j / 3.6e6 * region.g_per_kwh, attribution="share", warnings=warnings,
        nbcarbon_version="0")


def _records() -> list[Footprint]:
    out = []
    for label in (None, "train", "<b>&\u202e\x1b" + "x" * 100):
        for status in ("ok", "error", "interrupted"):
            for warnings in ((), ("w <1> & more", "second")):
                for region in REGIONS:
                    for energy_j, count in ((0.0, None), (1.234, 7), (5e6, 12), (3e10, None)):
                        out.append(_record(label, status, warnings, region, energy_j, count))
    return out


def _head_text(fp: Footprint) -> str:
    """The text readout's first line as the readout wrote it before the pieces were shared."""
    return (f"nbcarbon · {readout._title(fp)} · {readout.format_duration(fp.duration_s)} · "
            f"{readout.format_energy(fp.energy_j)} · {readout.format_mass(fp.co2e_g)} CO2e")


def _head_html(fp: Footprint) -> str:
    return (f"<div><b>{escape(readout.format_energy(fp.energy_j))}</b> · "
            f"<b>{escape(readout.format_mass(fp.co2e_g))} CO2e</b> · "
            f"{escape(readout.format_duration(fp.duration_s))} · {escape(readout._title(fp))}</div>")


def test_a_full_readout_says_what_each_rendering_says_alone() -> None:
    for fp in _records():
        data, metadata = readout.mimebundle(fp)
        assert data == {"text/plain": readout.text(fp), "text/html": readout.html(fp)}
        assert metadata == {"nbcarbon": fp.to_dict()}
        text, html = data["text/plain"], data["text/html"]
        assert text.split("\n")[0] == _head_text(fp)
        assert f"\n  region {readout._region_line(fp)}" in text
        assert _head_html(fp) in html
        assert f"<div>region {escape(readout._region_line(fp))}</div>" in html


def test_compact_readouts_are_untouched() -> None:
    for fp in _records():
        data, _ = readout.mimebundle(fp, True)
        line = readout.one_line(fp)
        assert data == {"text/plain": line, "text/html": readout.html(fp, True)}


def test_the_shell_found_is_get_ipythons(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython
    from IPython.core.interactiveshell import InteractiveShell

    assert shown._shell(IPython) is IPython.get_ipython() is None
    ip = InteractiveShell.instance()
    try:
        assert shown._shell(IPython) is IPython.get_ipython() is ip
        assert shown.in_ipython() and not shown.in_kernel()
        fake = type("Shell", (), {"display_pub": object(), "kernel": object()})()
        monkeypatch.setattr(IPython, "get_ipython", lambda: fake)  # set on the module: it wins
        assert shown._shell(IPython) is fake
        assert shown.in_kernel()
    finally:
        InteractiveShell.clear_instance()
    monkeypatch.undo()
    assert shown._shell(IPython) is IPython.get_ipython() is None
    assert not shown.in_ipython()


class _Session:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, socket: Any, msg_type: str, content: dict, parent: Any = None,
             ident: Any = None) -> None:
        self.sent.append((socket, msg_type, content, parent, ident))


class _Pub:
    """A kernel's display publisher whose attributes count their reads."""

    def __init__(self) -> None:
        self.reads: dict[str, int] = {}
        self._values = {"session": _Session(), "pub_socket": object(),
                        "parent_header": {"msg_id": "cell"}, "topic": b"display_data"}
        self._hooks: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name not in self.__dict__.get("_values", {}):
            raise AttributeError(name)
        self.reads[name] = self.reads.get(name, 0) + 1
        return self._values[name]


def test_a_readout_message_has_the_publishers_parent_and_topic(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    pub = _Pub()
    shell = type("Shell", (), {"display_pub": pub, "kernel": object()})()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    found = shown._Publisher.find()
    assert found is not None
    found.send("display_data", {"text/plain": "x"}, {"m": 1}, "d1")
    found.send("update_display_data", {"text/plain": "y"}, {"m": 2}, "d1")
    socket = pub._values["pub_socket"]
    assert pub._values["session"].sent == [
        (socket, "display_data", {"data": {"text/plain": "x"}, "metadata": {"m": 1},
                                  "transient": {"display_id": "d1"}}, {"msg_id": "cell"},
         b"display_data"),
        (socket, "update_display_data", {"data": {"text/plain": "y"}, "metadata": {"m": 2},
                                         "transient": {"display_id": "d1"}}, {"msg_id": "cell"},
         b"display_data")]
    assert pub.reads == {"session": 1, "pub_socket": 1, "parent_header": 1, "topic": 1}
    # without any attribute publish() uses, IPython's functions are used instead
    del pub._values["topic"]
    assert shown._Publisher.find() is None
