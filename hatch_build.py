"""Hatchling build hook: compile ``spectra_core._fastbuild``, the optional C builders.

A wheel gets the compiled module (and a platform tag); an editable install compiles it
in place, next to the sources. When compiling fails (no C compiler, no Python headers)
the build goes on without it, with a warning: spectra then builds entries in Python,
which gives the same objects, slower. ``SPECTRA_PURE_PYTHON=1`` at build time skips the
compile.
"""

from __future__ import annotations

import os
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
        if self.target_name != "wheel" or os.environ.get("SPECTRA_PURE_PYTHON"):
            return
        editable = version == "editable"
        out_dir = self.root if editable else tempfile.mkdtemp(prefix="spectra-fastbuild-")
        try:
            built = _compile(self.root, out_dir, inplace=editable)
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


def _compile(root: str, out_dir: str, *, inplace: bool) -> str:
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
        cmd.build_temp = tempfile.mkdtemp(prefix="spectra-fastbuild-tmp-")
        cmd.ensure_finalized()
        cmd.run()
        return str(Path(root, cmd.get_ext_fullpath(MODULE)))  # relative with --inplace
    finally:
        os.chdir(here)
