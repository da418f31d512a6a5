from typing import Any

import pytest

from spectra_core import InvalidArgumentError
from spectra_core.durations import Duration
from spectra_core.plugins import BackendKind, load_plugins, module_source
from spectra_core.testing import FakeClock, JobQueueConformance
from spectra_core.workers import JobQueue, JobRetry, JobStatus
from spectra_memory import MemoryJobQueue, MemoryQueueOptions
from spectra_memory import _plugin as memory_plugin


class TestMemoryJobQueue(JobQueueConformance):
    @pytest.fixture
    def make_queue(self) -> Any:
        def make(clock: FakeClock, *, lease_timeout: float, retry: JobRetry) -> JobQueue:
            return MemoryJobQueue(lease_timeout=lease_timeout, retry=retry, clock=clock)

        return make


def test_memory_queue_is_registered() -> None:
    registry = load_plugins([module_source(memory_plugin, "spectra-memory")])
    backend = registry.get(BackendKind.JOB_QUEUE, "memory")
    assert backend.options is MemoryQueueOptions
    options = MemoryQueueOptions(
        lease_timeout=Duration(5.0), max_attempts=2, wait_initial=Duration(0.5), keep_finished=3
    )
    queue = registry.create(BackendKind.JOB_QUEUE, "memory", options)
    assert isinstance(queue, MemoryJobQueue)
    assert (queue.lease_timeout, queue.retry.max_attempts, queue.retry.wait_initial) == (
        5.0,
        2,
        0.5,
    )
    assert queue.keep_finished == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lease_timeout": 0}, "lease_timeout"), ({"keep_finished": -1}, "keep_finished")],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        MemoryJobQueue(**kwargs)


async def test_finished_jobs_beyond_keep_finished_are_forgotten_with_their_keys() -> None:
    queue = MemoryJobQueue(keep_finished=2, clock=FakeClock())
    ids = []
    for i in range(3):
        job = await queue.enqueue("s1", {"input": str(i)}, key=f"k{i}")
        ids.append(job.id)
        lease = await queue.lease("w")
        assert lease is not None
        await queue.complete(lease, i)
    assert [(await queue.get(i)).status for i in ids[1:]] == [JobStatus.COMPLETED] * 2
    with pytest.raises(LookupError):
        await queue.get(ids[0])
    again = await queue.enqueue("s1", {"input": "0"}, key="k0")
    assert again.id != ids[0]
