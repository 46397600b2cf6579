"""The magics in a real IPython InteractiveShell (no kernel): results, errors, nesting, hooks."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

import nbcarbon.api


def records() -> list:
    return nbcarbon.api.default_session().records


def test_cell_value_and_record(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%carbon --label sum\nsum(range(1000))")
    assert result.success and result.result == 499500
    (fp,) = records()
    assert fp.label == "sum" and fp.status == "ok"
    assert fp.execution_count == result.execution_count


def test_error_propagates_unchanged_and_is_recorded(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%carbon\n1 / 0")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert records()[-1].status == "error"


def test_keyboard_interrupt_is_recorded_as_interrupted(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%carbon\nraise KeyboardInterrupt")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert records()[-1].status == "interrupted"


def test_bad_arguments_are_a_usage_error_and_the_cell_does_not_run(shell, capsys) -> None:
    shell.user_ns["ran"] = False
    result = shell.run_cell("%%carbon --pue 7\nran = True")
    assert not result.success
    assert shell.user_ns["ran"] is False
    assert "--pue must be a number from 1 to 3" in capsys.readouterr().err
    assert records() == []


def test_nested_inside_time_measures_and_returns_the_value(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%time\n%%carbon --label inner\nx = 21\nx * 2")
    assert result.success and result.result == 42
    assert [fp.label for fp in records()] == ["inner"]
    result = shell.run_cell("%%time\n%%carbon\nraise ValueError('x')")
    assert records()[-1].status == "error"


def test_time_inside_carbon(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%carbon\n%%time\nsum(range(10))")
    assert result.success
    assert len(records()) == 1


def test_auto_mode_measures_every_cell_once(shell: InteractiveShell) -> None:
    shell.run_cell("%carbon auto on")
    shell.run_cell("a = 1")
    shell.run_cell("%%carbon --label both\nb = 2")
    shell.run_cell("%carbon status")
    shell.run_cell("%carbon auto off")
    shell.run_cell("c = 3")
    assert [fp.label for fp in records()] == [None, "both"]


def test_await_at_top_level_still_works(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%carbon\nimport asyncio\nawait asyncio.sleep(0.01)\n'done'")
    assert result.success and result.result == "done"
    assert records()[-1].status == "ok"


def test_pue_and_region_commands_reprice_but_keep_energy(shell: InteractiveShell) -> None:
    shell.run_cell("%%carbon\nsum(range(100000))")
    before = records()[-1]
    shell.run_cell("%carbon pue 1.5")
    shell.run_cell("%carbon region PL")
    after = records()[-1]
    assert after.energy_j == before.energy_j and after.pue == 1.5
    assert after.region.code == "PL" and after.region.chosen_by == "command"
    assert after.co2e_g == pytest.approx(after.energy_j / 3.6e6 * 1.5 * after.region.g_per_kwh)


def test_cell_region_flag_pins_the_cell(shell: InteractiveShell) -> None:
    shell.run_cell("%%carbon --region EE\n1")
    shell.run_cell("%carbon region PL")
    fp = records()[-1]
    assert fp.region.code == "EE" and fp.region.chosen_by == "magic"


def test_reload_does_not_duplicate_hooks(shell: InteractiveShell) -> None:
    shell.run_cell("%reload_ext nbcarbon")
    shell.run_cell("%load_ext nbcarbon")
    shell.run_cell("%%carbon\n1")
    assert len(records()) == 1
    assert sum(1 for cb in shell.events.callbacks["pre_run_cell"]
               if getattr(cb, "__qualname__", "").startswith("CarbonExtension")) == 1


def test_compare_prices_the_session_in_each_region(shell: InteractiveShell) -> None:
    shell.run_cell("%%carbon\nsum(range(100000))")
    result = shell.run_cell("%carbon compare SE PL")
    assert result.success
    ax = result.result.axes[0]
    assert [t.get_text().split()[0] for t in ax.get_xticklabels()] == ["SE", "PL"]
    se, pl = (p.get_height() for p in ax.patches)
    assert pl > se > 0
    bad = shell.run_cell("%carbon compare SE NOWHERE")
    assert not bad.success and len(records()) == 1


def test_live_and_forecast_commands_without_network(shell: InteractiveShell, capsys) -> None:
    # SE has no keyless live provider, so nothing is fetched: the answers say so instead.
    assert shell.run_cell("%carbon live on").success
    shell.run_cell("%carbon status")
    out = capsys.readouterr().out
    assert "live: on" in out
    result = shell.run_cell("%carbon forecast 12 --job 3")
    assert result.success and result.result is None
    assert "No forecast for SE" in capsys.readouterr().out
    assert not shell.run_cell("%carbon forecast soon").success
    assert "usage: %carbon forecast" in capsys.readouterr().err
    assert shell.run_cell("%carbon live off").success
    shell.run_cell("%carbon status")
    assert "live: off" in capsys.readouterr().out


@pytest.mark.parametrize("line, usage", [
    ("%carbon pue", "%carbon pue: usage: %carbon pue X (one number from 1 to 3)"),
    ("%carbon region", "%carbon region: usage: %carbon region CODE"),
    ("%carbon region SE PL", "%carbon region SE PL: usage: %carbon region CODE"),
    ("%carbon auto maybe", "%carbon auto maybe: usage: %carbon auto on|off"),
    ("%carbon compare", "%carbon compare: usage: %carbon compare CODE [CODE ...]"),
])
def test_a_known_command_with_wrong_arguments_says_what_it_takes(shell, capsys, line: str,
                                                                usage: str) -> None:
    result = shell.run_cell(line)
    assert not result.success
    err = capsys.readouterr().err
    assert usage in err and "unknown command" not in err and "Traceback" not in err


def test_dask_without_distributed_is_one_line_and_off_needs_nothing(
        shell, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """``distributed`` is an extra: missing, ``dask on`` says how to install it, ``dask off``
    (nothing attached) just succeeds; neither is a traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "nbcarbon.cluster", raising=False)
    assert shell.run_cell("%carbon dask off").success
    assert capsys.readouterr().out.strip() == "nbcarbon: dask off"
    result = shell.run_cell("%carbon dask on")
    assert not result.success
    err = capsys.readouterr().err
    assert "pip install 'nbcarbon[dask]'" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


@pytest.mark.parametrize("args, said", [("-5", "HOURS must be a positive number of hours, not -5"),
                                        ("0", "HOURS must be"), ("nan", "HOURS must be"),
                                        ("6 --job -2", "--job must be a positive")])
def test_a_forecast_of_no_hours_is_refused_before_any_provider_is_asked(shell, capsys, args: str,
                                                                        said: str) -> None:
    result = shell.run_cell(f"%carbon forecast {args}")
    assert not result.success
    err = capsys.readouterr().err
    assert said in err and "No forecast" not in err


def test_re_pricing_in_a_terminal_does_not_print_every_readout_again(shell, capsys) -> None:
    """A terminal's publisher prints an update as one more output: nothing there changes in
    place, so re-pricing prints its one line, not every earlier readout and summary again."""
    for i in range(3):
        shell.run_cell(f"%%carbon --label r{i}\nx = {i}")
    shell.run_cell("%carbon summary")
    capsys.readouterr()
    assert shell.run_cell("%carbon region PL").success
    out = capsys.readouterr().out
    assert out.strip().startswith("nbcarbon: region PL")
    assert "readout(s) re-priced" in out and len(out.strip().splitlines()) == 1
    assert all(fp.region.code == "PL" for fp in records())
