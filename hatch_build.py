"""Hatchling build hook: compile ``spectra_core._fastbuild``, the optional C builders.

A wheel gets the compiled module (and a platform tag); an editable install compiles it
in place, next to the sources. When compiling fails (no C compiler, no Python headers)
the build goes on without it, with a warning: spectra then builds entries in Python,
which gives the same objects, slower. ``SPECTRA_PURE_PYTHON=1`` at build time skips the
compile.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "spectra_core._fastbuild"
SOURCE = "spectra_core/_fastbuild.c"


class FastBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._scratch: list[str] = []
        if self.target_name != "wheel" or os.environ.get("SPECTRA_PURE_PYTHON"):
            return
        editable = version == "editable"
        temp = tempfile.mkdtemp(prefix="spectra-fastbuild-")
        self._scratch.append(temp)
        out_dir = self.root if editable else os.path.join(temp, "lib")
        try:
            built = _compile(self.root, out_dir, os.path.join(temp, "tmp"), inplace=editable)
        except Exception as exc:  # any compiler failure: build the pure-Python wheel
            print(
                f"spectra-core: {MODULE} not compiled ({type(exc).__name__}: {exc}); "
                "entries will be built in Python",
                file=sys.stderr,
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:
            build_data["force_include"][built] = f"spectra_core/{Path(built).name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        for path in self._scratch:
            shutil.rmtree(path, ignore_errors=True)


def _compile(root: str, out_dir: str, temp_dir: str, *, inplace: bool) -> str:
    """Compile the extension with setuptools' build_ext; the path of the built file."""
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    here = os.getcwd()
    os.chdir(root)  # build_ext --inplace writes next to the source, relative to the cwd
    try:
        dist = Distribution({"name": "spectra-core", "ext_modules": [Extension(MODULE, [SOURCE])]})
        cmd = build_ext(dist)
        cmd.inplace = inplace
        cmd.build_lib = out_dir
        cmd.build_temp = temp_dir
        cmd.ensure_finalized()
        cmd.run()
        return str(Path(root, cmd.get_ext_fullpath(MODULE)))  # relative with --inplace
    finally:
        os.chdir(here)
