"""spectra: a runtime for serving conversational AI agents in production.

This namespace is for applications; backend authors import :mod:`spectra_core.backend`.
"""

from typing import Any

from .agent import ModelProvider, ModelRequest, ProviderError, ToolSpec
from .agent.builtin import EchoProvider, ScriptedProvider
from .agent.tools import Tool, tool
from .breaker import (
    BreakerListener,
    BreakerMetrics,
    CircuitBreaker,
    CircuitBreakerOptions,
    CircuitState,
    DefaultCircuitBreaker,
)
from .clock import Clock, SystemClock
from .engine import (
    EventType,
    RunEvent,
    RunHandle,
    RunOptions,
    RunResult,
    RunStatus,
    SessionEngine,
)
from .errors import (
    CapacityError,
    CircuitOpenError,
    ConfigError,
    ConflictError,
    EngineDrainingError,
    EngineNotStartedError,
    EntryNotFoundError,
    InvalidArgumentError,
    InvalidIdError,
    PluginError,
    RateLimitedError,
    RunNotFoundError,
    SessionBusyError,
    SessionNotFoundError,
    SpectraError,
    StoreError,
)
from .errors import EntryNotFound as EntryNotFound  # the first release's names
from .errors import SessionNotFound as SessionNotFound
from .hookspecs import Register, hookimpl, hookspec
from .ids import new_entry_id, new_session_id, validate_id
from .manager import SessionManager
from .models import (
    AssistantMessage,
    AuditEntry,
    CompactionEntry,
    ContentBlock,
    CustomEntry,
    CustomMessageEntry,
    Entry,
    ForkOrigin,
    ImageContent,
    LabelEntry,
    Message,
    MessageEntry,
    ModelChangeEntry,
    ModelRef,
    OpaqueEntry,
    PartialLoad,
    Session,
    SessionConfig,
    TextContent,
    ThinkingContent,
    ToolCall,
    ToolResultMessage,
    Usage,
    UserMessage,
)
from .plugins import Backend, BackendKind, PluginRegistry, load_plugins
from .rate_limit import (
    CompositeRateLimiter,
    LocalRateLimiter,
    RateLimiter,
    RateLimitRequest,
    RateLimitResult,
    Reservation,
)
from .store import SessionFilter, SessionInfo, SessionPage, SessionStore
from .tree import SessionContext, TreeNode
from .workers import AgentConfig, AgentRegistry, Budget, SequentialWorkerPool, create_agent_runner

__version__ = "0.1.0"

__all__ = [
    "AgentConfig",
    "AgentRegistry",
    "AssistantMessage",
    "AuditEntry",
    "Backend",
    "BackendKind",
    "BreakerListener",
    "BreakerMetrics",
    "Budget",
    "CapacityError",
    "CircuitBreaker",
    "CircuitBreakerOptions",
    "CircuitOpenError",
    "CircuitState",
    "Clock",
    "CompactionEntry",
    "CompositeRateLimiter",
    "ConfigError",
    "ConflictError",
    "ContentBlock",
    "CustomEntry",
    "CustomMessageEntry",
    "DefaultCircuitBreaker",
    "EchoProvider",
    "EngineDrainingError",
    "EngineNotStartedError",
    "Entry",
    "EntryNotFoundError",
    "EventType",
    "ForkOrigin",
    "ImageContent",
    "InvalidArgumentError",
    "InvalidIdError",
    "LabelEntry",
    "LocalRateLimiter",
    "Message",
    "MessageEntry",
    "ModelChangeEntry",
    "ModelProvider",
    "ModelRef",
    "ModelRequest",
    "OpaqueEntry",
    "PartialLoad",
    "PluginError",
    "PluginRegistry",
    "ProviderError",
    "RateLimitRequest",
    "RateLimitResult",
    "RateLimitedError",
    "RateLimiter",
    "Register",
    "Reservation",
    "RunEvent",
    "RunHandle",
    "RunNotFoundError",
    "RunOptions",
    "RunResult",
    "RunStatus",
    "ScriptedProvider",
    "SequentialWorkerPool",
    "Session",
    "SessionBusyError",
    "SessionConfig",
    "SessionContext",
    "SessionEngine",
    "SessionFilter",
    "SessionInfo",
    "SessionManager",
    "SessionNotFoundError",
    "SessionPage",
    "SessionStore",
    "SpectraError",
    "StoreError",
    "SystemClock",
    "TextContent",
    "ThinkingContent",
    "Tool",
    "ToolCall",
    "ToolResultMessage",
    "ToolSpec",
    "TreeNode",
    "Usage",
    "UserMessage",
    "__version__",
    "create_agent_runner",
    "hookimpl",
    "hookspec",
    "load_plugins",
    "new_entry_id",
    "new_session_id",
    "tool",
    "validate_id",
]


#: Names that left this namespace for :mod:`spectra_core.backend`: still importable, with
#: a DeprecationWarning, for at least one release.
_MOVED_TO_BACKEND = frozenset({"StoreBase"})


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_BACKEND:
        import warnings

        from . import backend

        warnings.warn(
            f"spectra_core.{name} moved to spectra_core.backend.{name}; "
            "import it from there (the old name goes away in a later release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(backend, name)
    raise AttributeError(f"module 'spectra_core' has no attribute {name!r}")
