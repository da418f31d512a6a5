"""Background work: job queues, the sequential worker pool and the agent runner.

Queue backend authors import from here: the :class:`JobQueue` contract, :class:`Job`,
:class:`Lease`, :class:`JobRetry`, :class:`JobQueueBase` and the validation helpers;
their conformance suite is :class:`spectra_core.testing.JobQueueConformance`.
"""

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
from ._runner import JOB_FINISHED, AgentRunner, create_agent_runner

__all__ = [
    "JOB_FINISHED",
    "MAX_KEY_LENGTH",
    "AgentRunner",
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
]
