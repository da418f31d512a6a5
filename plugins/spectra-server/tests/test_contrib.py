"""contrib/: the Kubernetes ConfigMap's spectra.toml and the FastAPI example work."""

from __future__ import annotations

import runpy
import textwrap
import tomllib
from pathlib import Path

import httpx

from spectra_core.config import parse_config
from spectra_core.plugins import load_plugins
from spectra_server import server_settings

ROOT = Path(__file__).parents[3]


def _configmap_toml() -> str:
    text = (ROOT / "contrib/k8s/configmap.yaml").read_text()
    body = text.split("spectra.toml: |\n", 1)[1]
    return textwrap.dedent(body)


def test_the_configmap_holds_a_valid_config() -> None:
    registry = load_plugins()  # spectra-redis is a test plugin of this distribution
    env = {"SPECTRA_KEY_ALICE": "k" * 32, "HOSTNAME": "pod-1"}
    config = parse_config(tomllib.loads(_configmap_toml()), "configmap.yaml", registry, env=env)
    settings = server_settings(config)
    assert settings.host == "0.0.0.0" and len(settings.api_keys) == 1
    deployment = (ROOT / "contrib/k8s/deployment.yaml").read_text()
    grace = int(deployment.split("terminationGracePeriodSeconds:")[1].split()[0])
    assert grace > 5 + settings.drain_timeout + settings.shutdown_timeout


async def test_the_fastapi_example_mounts_the_api() -> None:
    example = runpy.run_path(str(ROOT / "contrib/examples/fastapi_app.py"))
    app = example["app"]
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        assert (await client.get("/")).json()["agents"] == "/agents"
        run = await client.post("/agents/v1/runs", json={"input": "hi"})
        assert run.status_code == 200 and run.json()["text"] == "echo: hi"
        assert (await client.get("/agents/readyz")).status_code == 200
