"""StoreRecipe: how another process (or a reopen) makes a store over the same data."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import InvalidArgumentError
from ..store import SessionStore

__all__ = ["StoreRecipe"]


@attrs.frozen
class StoreRecipe:
    """``factory`` names a callable as ``"package.module:name"`` (a store class, or a
    function returning a store); ``kwargs`` are its keyword arguments, JSON values only,
    so a fresh process can be handed the recipe on its command line::

        StoreRecipe("spectra_sqlite:SQLiteSessionStore", {"db_path": str(path)})
    """

    factory: str
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)

    def open(self) -> SessionStore:
        """Import the factory and call it: a new store over the recipe's data."""
        module, _, name = self.factory.partition(":")
        if not module or not name:
            raise InvalidArgumentError(
                f"StoreRecipe.factory must be 'package.module:name', got {self.factory!r}"
            )
        make = getattr(importlib.import_module(module), name)
        store: SessionStore = make(**self.kwargs)
        return store

    def to_json(self) -> str:
        return json.dumps({"factory": self.factory, "kwargs": dict(self.kwargs)})

    @classmethod
    def from_json(cls, text: str) -> StoreRecipe:
        data = json.loads(text)
        return cls(data["factory"], data.get("kwargs", {}))
