"""Background work and delegation: job queues, the sequential worker pool, the agent
runner, and the agent registry.

Queue backend authors import from here: the :class:`JobQueue` contract, :class:`Job`,
:class:`Lease`, :class:`JobRetry`, :class:`JobQueueBase` and the validation helpers;
their conformance suite is :class:`spectra_core.testing.JobQueueConformance`.
"""

from ._agents import (
    AgentConfig,
    Budget,
    BudgetLimit,
    DelegationResult,
    DelegationStatus,
)
from ._agents_config import AgentTable, load_agents, parse_agents
from ._pool import Handler, JobFailed, SequentialWorkerPool
from ._queue import (
    MAX_KEY_LENGTH,
    Job,
    JobNotFound,
    JobQueue,
    JobQueueBase,
    JobRetry,
    JobStatus,
    Lease,
    LeaseLostError,
    check_enqueue,
    check_json,
)
from ._registry import DELEGATION_FINISHED, DELEGATION_STARTED, AgentRegistry
from ._runner import JOB_FINISHED, AgentRunner, create_agent_runner

__all__ = [
    "DELEGATION_FINISHED",
    "DELEGATION_STARTED",
    "JOB_FINISHED",
    "MAX_KEY_LENGTH",
    "AgentConfig",
    "AgentRegistry",
    "AgentRunner",
    "AgentTable",
    "Budget",
    "BudgetLimit",
    "DelegationResult",
    "DelegationStatus",
    "Handler",
    "Job",
    "JobFailed",
    "JobNotFound",
    "JobQueue",
    "JobQueueBase",
    "JobRetry",
    "JobStatus",
    "Lease",
    "LeaseLostError",
    "SequentialWorkerPool",
    "check_enqueue",
    "check_json",
    "create_agent_runner",
    "load_agents",
    "parse_agents",
]
