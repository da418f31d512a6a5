"""A worker process of the queue fault tests (run as a script).

``_queue_worker.py URL PREFIX LEASE_TIMEOUT``: runs a pool of 4 on the redis queue at
PREFIX until SIGTERM (then drains and exits 0). Its handler records each start in
``PREFIX:t:started`` (``job:pid:attempt``) and each job's effect once, idempotently:
the input is appended to ``PREFIX:t:order:<session>`` only the first time the job
completes. A payload with ``hang`` blocks forever on its first attempt (the test kills
the process); one with ``poison`` always raises.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import redis.asyncio as aioredis

from spectra_core import SessionManager
from spectra_core.workers import Job, JobRetry, SequentialWorkerPool
from spectra_redis import RedisJobQueue, RedisSessionStore

RECORD = """
if redis.call('SET', KEYS[1], '1', 'NX') then redis.call('RPUSH', KEYS[2], ARGV[1]) end
return redis.call('INCR', KEYS[3])
"""


async def main(url: str, prefix: str, lease_timeout: float) -> None:
    client = aioredis.Redis.from_url(url)
    record = client.register_script(RECORD)
    queue = RedisJobQueue(
        url,
        key_prefix=prefix,
        lease_timeout=lease_timeout,
        retry=JobRetry(max_attempts=3, wait_initial=0.05, wait_max=0.2),
        poll_interval=0.1,
    )
    store = RedisSessionStore(url, key_prefix=f"{prefix}:sessions")
    pool = SequentialWorkerPool(SessionManager(store), queue=queue, concurrency=4, idle_wait=0.2)

    async def handler(job: Job) -> str:
        await client.rpush(f"{prefix}:t:started", f"{job.id}:{os.getpid()}:{job.attempts}")
        await asyncio.sleep(0.005)  # some work, so a kill can land mid-job
        if job.payload.get("hang") and job.attempts == 1:
            await asyncio.Event().wait()
        if job.payload.get("poison"):
            raise RuntimeError(f"poison job {job.input}")
        t = f"{prefix}:t"
        keys = [f"{t}:done:{job.id}", f"{t}:order:{job.session_id}", f"{t}:runs:{job.id}"]
        await record(keys=keys, args=[job.input])
        return job.input

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await pool.process(handler)
    print("ready", flush=True)
    await stop.wait()
    await pool.stop(drain=True)
    await queue.aclose()
    await store.aclose()
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
