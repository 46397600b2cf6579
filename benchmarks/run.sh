#!/usr/bin/env bash
# One command for the whole comparison: `bash benchmarks/run.sh [--quick] [--only NAME,...]`.
#
# Why a venv of its own: the peers (codecarbon, carbontracker, zeus) pull in heavy stacks
# (pandas, numpy, amdsmi, ...) that nbcarbon's own environment must not carry. nbcarbon is
# installed into the same venv (editable, from this checkout, with its `run` extra for the real
# kernel measures and `dask` for the cluster boundary) so every tool runs on the same
# interpreter, interleaved. Nothing needs installing by hand: a fresh clone runs as it is.
# Set PEERS_VENV to reuse another directory; NO_INSTALL=1 skips pip when the venv is ready.
# Takes about 8 min with --quick and about 20 min in full on a 2-core machine (plus about 2 min for
# the first install); writes benchmarks/RESULTS.md. Needs the package index only for the install.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="${PEERS_VENV:-$here/.venv-peers}"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
if [[ "${NO_INSTALL:-0}" != 1 ]]; then
    echo "run.sh: installing nbcarbon and the peers into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >"$venv/install-pip.log" 2>&1
    "$venv/bin/python" -m pip install --quiet -e "$repo[run,dask]" >"$venv/install-nbcarbon.log" 2>&1 \
        || { cat "$venv/install-nbcarbon.log" >&2; exit 1; }
    # Each peer on its own, so one that fails to install does not keep the others out;
    # bench.py reports a missing peer with the import error.
    for peer in codecarbon carbontracker zeus; do
        if ! "$venv/bin/python" -m pip install --quiet "$peer" >"$venv/install-$peer.log" 2>&1; then
            echo "run.sh: could not install $peer (see $venv/install-$peer.log); measuring the others" >&2
        fi
    done
fi

cd "$repo"
exec "$venv/bin/python" "$here/bench.py" --command "bash benchmarks/run.sh $*" "$@"
