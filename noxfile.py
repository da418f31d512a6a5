"""Test matrix: core alone, each plugin alone, everything together, lint and typing.

Run everything with ``uvx nox``; one session with ``uvx nox -s core``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typing", "core", "plugin", "all", "template"]

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
PYTHON = "3.11"


def _requirement(plugin: str) -> str:
    """The plugin's install spec, with its ``test`` extra when it declares one."""
    meta = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())
    extras = meta["project"].get("optional-dependencies", {})
    return f"./plugins/{plugin}[test]" if "test" in extras else f"./plugins/{plugin}"


def _workspace_deps(plugin: str) -> list[str]:
    """Our other plugins that ``plugin`` needs (dependencies and test extra), which must
    come from the workspace rather than an index."""
    meta = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())
    deps = [
        *meta["project"].get("dependencies", []),
        *meta["project"].get("optional-dependencies", {}).get("test", []),
    ]
    names = {re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0] for dep in deps}
    return [p for p in PLUGINS if p in names and p != plugin]


def _install_editable(session: nox.Session, *plugins: str) -> None:
    args = ["-e", ".[testing]"]
    for plugin in plugins:
        args += ["-e", _requirement(plugin)]
    session.install(*args)


@nox.session(python=PYTHON)
def core(session: nox.Session) -> None:
    """spectra-core with no plugin installed: it imports, lists zero plugins, passes its tests."""
    _install_editable(session)
    session.run("python", "-c", "import spectra_core")
    session.run("spectra", "plugins")
    session.run(
        "python",
        "-c",
        "import json, subprocess; out = json.loads(subprocess.check_output("
        "['spectra', 'plugins', '--json'])); "
        "assert [p['distribution'] for p in out['plugins']] == ['spectra-core'], out",
    )
    session.run(
        "pytest",
        "tests",
        "-m",
        "not needs_plugins",
        *session.posargs,
        env={"SPECTRA_CORE_ONLY": "1"},
    )


def _test_plugins(plugin: str) -> list[str]:
    """Other workspace plugins a plugin's tests use (``[tool.spectra] test-plugins``,
    distribution names), e.g. spectra-redis's cold-store tests use spectra-sqlite."""
    meta = tomllib.loads((ROOT / "plugins" / plugin / "pyproject.toml").read_text())
    wanted = meta.get("tool", {}).get("spectra", {}).get("test-plugins", [])
    return [name for name in PLUGINS if name in wanted]


@nox.session(python=PYTHON)
@nox.parametrize("plugin", PLUGINS)
def plugin(session: nox.Session, plugin: str) -> None:
    """One plugin alone with core in a fresh environment, running its own tests (with
    the workspace plugins it and its tests use)."""
    _install_editable(
        session, plugin, *sorted(set(_workspace_deps(plugin)) | set(_test_plugins(plugin)))
    )
    session.run("spectra", "plugins")
    session.run("pytest", f"plugins/{plugin}/tests", *session.posargs)


@nox.session(name="all", python=PYTHON)
def all_(session: nox.Session) -> None:
    """Every distribution together: core tests, cross-distribution tests, plugin tests
    (with the bench peers installed, so the benchmark smoke test covers them too)."""
    _install_editable(session, *PLUGINS)
    session.install("--group", "bench")
    session.run("pytest", "tests", *session.posargs)
    for plugin in PLUGINS:
        session.run("pytest", f"plugins/{plugin}/tests", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict over core and every plugin."""
    _install_editable(session, *PLUGINS)
    session.install("mypy", "nox", "./contrib/plugin-template")
    session.run("mypy")


@nox.session(python=PYTHON)
def template(session: nox.Session) -> None:
    """The plugin template installs, is discovered, and passes the store conformance suite."""
    session.install("-e", ".[testing]", "./contrib/plugin-template[test]")
    out = session.run("spectra", "plugins", "--json", silent=True)
    assert out and '"acme"' in out, out
    session.run("pytest", "contrib/plugin-template/tests", *session.posargs)
