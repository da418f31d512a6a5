"""WebSocket transport for spectra (transport ``ws``)."""

__all__: list[str] = []
