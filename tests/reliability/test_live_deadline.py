"""Live pricing holds a cell at most 2 s in all, however many requests its provider makes.

Energi Data Service asks for measured values and then the forecast; Electricity Maps asks for
the history and then the latest value. Against a local server whose first answer comes just
inside the budget (1.6 s, and lacking the newest minutes, so the second request is needed) and
whose second request stalls for 10 s, a budget per request held the cell about 1.6 + 2 = 3.6 s;
one budget per cell ends it at about 2 s. The bound asserted (3 s) sits between the two with
most of a second of slack either way, for a busy machine; no stall is shorter than the budget
where that would matter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nbcarbon.live import make_pricer
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.nvml import FakeNvml
from tests.live.server import FakeProvider, Reply

TOKEN = "em-deadline-tok-3e8a"
FIRST_ANSWER_S = 1.6  # inside the 2 s budget, so the provider goes on to its second request
STALL_S = 10.0  # far beyond any budget: the second request never answers in time
BOUND_S = 3.0  # one budget: ~2.0 s; a budget per request: ~3.6 s


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


def eds(server: FakeProvider) -> None:
    server.route("/dataset/CO2Emis", Reply({"total": 0, "dataset": "CO2Emis", "records": []},
                                           delay_s=FIRST_ANSWER_S))
    server.route("/dataset/CO2EmisProg", Reply({"records": []}, delay_s=STALL_S))


def electricitymaps(server: FakeProvider) -> None:
    server.route("/v3/carbon-intensity/history", Reply({"zone": "DE", "history": []}, delay_s=FIRST_ANSWER_S))
    server.route("/v3/carbon-intensity/latest", Reply({"zone": "DE"}, delay_s=STALL_S))


@pytest.mark.parametrize("region, name, routes, second", [
    ("DK", "energidataservice", eds, "/dataset/CO2EmisProg"),
    ("DE", "electricitymaps", electricitymaps, "/v3/carbon-intensity/latest"),
])
def test_a_cell_waits_at_most_two_seconds_across_all_requests(
        tmp_path: Path, server: FakeProvider, region: str, name: str,
        routes: Callable[[FakeProvider], None], second: str) -> None:
    routes(server)
    # NBCARBON_LIVE_TIMEOUT stays at its default (5 s): pricing clamps it to 2 s per cell.
    settings = Settings(interval_s=0.05, powercap_root=tmp_path / "none", ledger=None, live=True,
                        electricitymaps_token=TOKEN)
    s = Session(settings, {"NBCARBON_REGION": region}, nvml=FakeNvml(gpus=[]))
    try:
        s.pricer = make_pricer(settings, s.add_notice, {name: server.base_url})
        w = s.begin("cell")
        sum(range(1000))
        t0 = time.monotonic()
        fp = s.end(w)
        waited = time.monotonic() - t0
    finally:
        s.close()
    assert second in server.paths()  # the first answer came in time, and the second was asked
    assert fp.region.chosen_by == "env:NBCARBON_REGION"  # fell back to the bundled figure
    assert any("no complete answer within 2 s" in w for w in fp.warnings), fp.warnings
    assert waited < BOUND_S, f"the cell waited {waited:.2f} s for live pricing"
