"""Live pricing through the session: records, re-pricing, status, and the token nowhere in outputs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from nbcarbon import readout
from nbcarbon.errors import SettingsError
from nbcarbon.live import LivePricer, make_pricer
from nbcarbon.live.commands import live_status_lines, set_live
from nbcarbon.session import Session
from nbcarbon.settings import Settings
from tests.fakes.nvml import FakeNvml
from tests.live.fakeapis import ukgrid_constant
from tests.live.server import FakeProvider, Reply

TOKEN = "em-s3cr3t-7d1f0c2a9b"


def session(tmp_path: Path, region: str, **settings: object) -> Session:
    s = Settings(interval_s=0.05, powercap_root=tmp_path / "no-powercap", ledger=None, **settings)
    return Session(s, {"NBCARBON_REGION": region}, nvml=FakeNvml(gpus=[]))


def measure(s: Session, label: str = "cell"):
    w = s.begin(label)
    sum(range(20000))
    return s.end(w)


def test_no_pricer_and_no_live_import_when_off(tmp_path: Path) -> None:
    s = session(tmp_path, "GB")
    assert s.pricer is None
    fp = measure(s)
    s.close()
    assert fp.region.chosen_by == "env:NBCARBON_REGION" and fp.region.g_per_kwh == 210.89
    assert live_status_lines(s)[0].startswith("live: off")


def test_records_priced_live_then_repriced_from_stored_energy(tmp_path: Path, server: FakeProvider) -> None:
    server.route("/intensity/", ukgrid_constant(123.0))
    s = session(tmp_path, "GB", live=True)
    assert isinstance(s.pricer, LivePricer)  # NBCARBON_LIVE=1 installs it
    s.pricer = make_pricer(s.settings, s.add_notice, {"ukgrid": server.base_url})
    fp = measure(s)
    assert fp.region.chosen_by == "live:ukgrid" and fp.region.g_per_kwh == 123.0
    assert fp.region.source == "National Grid ESO Carbon Intensity API (actual)"
    assert fp.co2e_g == pytest.approx(fp.energy_j / 3.6e6 * 123.0)
    # a PUE change keeps each record's live intensity
    [fp2] = s.set_pue(1.5)
    assert fp2.region == fp.region and fp2.co2e_g == pytest.approx(fp.co2e_g * 1.5)
    # another region re-prices the stored energy with that region's bundled figure
    [fp3] = s.set_region("SE")
    assert fp3.region.code == "SE" and fp3.region.chosen_by == "command"
    assert fp3.energy_j == fp.energy_j and fp3.co2e_g == pytest.approx(fp.energy_j / 3.6e6 * 1.5 * 35.82)
    lines = live_status_lines(s)
    s.close()
    assert lines[0].startswith("live: on, no live source for SE")
    assert "last value: 123 g/kWh (actual)" in lines[1] and "from ukgrid, fetched" in lines[1]


def test_live_on_and_off_commands(tmp_path: Path, server: FakeProvider) -> None:
    server.route("/intensity/", ukgrid_constant(99.0, actual=False))
    s = session(tmp_path, "GB")
    line = set_live(s, True, {"ukgrid": server.base_url})
    assert line.startswith("live intensity on: UK Carbon Intensity API (ukgrid) for GB")
    assert measure(s).region.source.endswith("(forecast)")
    assert set_live(s, False).startswith("live intensity off") and s.pricer is None
    assert measure(s).region.chosen_by == "env:NBCARBON_REGION"
    s.close()


def test_an_unreachable_provider_is_one_notice_and_a_warning_per_record(tmp_path: Path,
                                                                        server: FakeProvider) -> None:
    server.route("/intensity/", Reply({"error": "down"}, status=502))
    s = session(tmp_path, "GB")
    set_live(s, True, {"ukgrid": server.base_url})
    fps = [measure(s) for _ in range(3)]
    notices = s.take_notices()
    s.close()
    assert all(fp.region.chosen_by == "env:NBCARBON_REGION" and fp.region.g_per_kwh == 210.89 for fp in fps)
    assert all(any("HTTP 502" in w for w in fp.warnings) for fp in fps)
    assert len([n for n in notices if "live intensity unavailable" in n]) == 1


def test_the_token_appears_nowhere(tmp_path: Path, server: FakeProvider) -> None:
    """Refused, malformed and good answers, all echoing the token: records, readouts, notices,
    status, the ledger file and every repr stay clean."""
    from nbcarbon.api import LedgerHook

    answers = iter([
        Reply({"status": "error", "message": f"token {TOKEN} is invalid"}, status=401),
        Reply(f'{{"history": "{TOKEN}"'.encode()),
    ])

    def history(path: str, query: dict[str, str]) -> Reply:
        answer = next(answers, None)
        if answer is not None:
            return answer
        from datetime import datetime, timedelta, timezone
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        return Reply({"zone": "DE", "history": [
            {"zone": "DE", "carbonIntensity": 333, "datetime": (now - timedelta(hours=h)).isoformat(),
             "note": TOKEN} for h in range(3)]})

    server.route("/v3/carbon-intensity/history", history)
    server.route("/v3/carbon-intensity/latest", Reply({"message": TOKEN}, status=500))
    settings = Settings.from_environ({"NBCARBON_LIVE": "on", "NBCARBON_ELECTRICITYMAPS_TOKEN": TOKEN,
                                      "NBCARBON_LEDGER": str(tmp_path / "ledger.sqlite3"),
                                      "NBCARBON_INTERVAL": "0.05",
                                      "NBCARBON_POWERCAP_ROOT": str(tmp_path / "none")})
    s = Session(settings, {"NBCARBON_REGION": "DE"}, nvml=FakeNvml(gpus=[]))
    s.pricer = make_pricer(settings, s.add_notice, {"electricitymaps": server.base_url})
    assert settings.ledger is not None
    hook = LedgerHook(s, settings.ledger, {})
    outputs: list[str] = []
    fps = []
    for i in range(3):
        fps.append(measure(s, f"c{i}"))
        s.pricer.service.cache.clear()  # ask again at once instead of backing off
    assert fps[-1].region.chosen_by == "live:electricitymaps" and fps[-1].region.g_per_kwh == 333
    assert "refused (HTTP 401)" in fps[0].warnings[-1] and "not JSON" in fps[1].warnings[-1]
    s.set_pue(1.2)
    outputs += s.take_notices() + live_status_lines(s, probe=True)
    for fp in s.records:
        outputs += [json.dumps(fp.to_dict()), readout.text(fp), readout.html(fp), repr(fp),
                    json.dumps(readout.mimebundle(fp)[1])]
    outputs += [repr(settings), repr(s.pricer), repr(s.pricer.service.providers)]
    hook.close()
    s.close()
    blob = "\n".join(outputs)
    assert TOKEN not in blob
    assert TOKEN.encode() not in settings.ledger.read_bytes()
    rows = sqlite3.connect(settings.ledger).execute("SELECT * FROM sqlite_master").fetchall()
    assert rows  # the ledger was written
    for table in [r[1] for r in rows if r[0] == "table"]:
        for row in sqlite3.connect(settings.ledger).execute(f"SELECT * FROM {table}"):  # noqa: S608
            assert TOKEN not in repr(row)


@pytest.mark.parametrize("env, live, timeout", [
    ({}, False, 5.0), ({"NBCARBON_LIVE": "1"}, True, 5.0), ({"NBCARBON_LIVE": "ON"}, True, 5.0),
    ({"NBCARBON_LIVE": "off", "NBCARBON_LIVE_TIMEOUT": "0.5"}, False, 0.5),
    ({"NBCARBON_LIVE": "0"}, False, 5.0),
])
def test_live_settings(env: dict[str, str], live: bool, timeout: float) -> None:
    s = Settings.from_environ({"NBCARBON_LEDGER": "off", **env})
    assert (s.live, s.live_timeout_s, s.electricitymaps_token) == (live, timeout, None)


@pytest.mark.parametrize("env, text", [
    ({"NBCARBON_LIVE": "yes please"}, "NBCARBON_LIVE must be one of on, off, 1, 0"),
    ({"NBCARBON_LIVE_TIMEOUT": "60"}, "NBCARBON_LIVE_TIMEOUT must be a number from 0.1 to 30"),
    ({"NBCARBON_LIVE_TIMEOUT": "soon"}, "NBCARBON_LIVE_TIMEOUT must be a number from 0.1 to 30"),
])
def test_bad_live_settings_name_the_variable(env: dict[str, str], text: str) -> None:
    with pytest.raises(SettingsError, match=text):
        Settings.from_environ(env)


def test_the_token_is_kept_but_never_shown() -> None:
    s = Settings.from_environ({"NBCARBON_ELECTRICITYMAPS_TOKEN": f" {TOKEN} ", "NBCARBON_LEDGER": "off"})
    assert s.electricitymaps_token == TOKEN and TOKEN not in repr(s) and TOKEN not in str(s)
