"""The public names of spectra_server stay what docs/server.md promises."""

from __future__ import annotations

import spectra_server


def test_public_names() -> None:
    assert sorted(spectra_server.__all__) == [
        "ANONYMOUS",
        "ApiKey",
        "ApiKeyAuthenticator",
        "AuthenticationError",
        "Authenticator",
        "CorsSettings",
        "Principal",
        "Server",
        "ServerSettings",
        "create_app",
        "hash_key",
        "presented_key",
        "server_of",
        "server_settings",
    ]
    for name in spectra_server.__all__:
        assert getattr(spectra_server, name) is not None


def test_serve_is_a_spectra_command() -> None:
    from spectra_core.cli._main import build_parser

    parser = build_parser()
    args = parser.parse_args(["serve", "--port", "0", "--insecure"])
    assert args.port == 0 and args.insecure is True and callable(args.handler)
