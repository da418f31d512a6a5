"""Rate limiter and circuit breaker, side by side with `limits`, pybreaker and aiobreaker.

Run: ``uv run python -m bench.resilience`` (peers from the ``bench`` dependency group).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench import _breaker, _limiter


def main(argv: Sequence[str] | None = None) -> None:
    print("== rate limiter: LocalRateLimiter vs limits (moving window, memory, async)\n")
    _limiter.main(argv)
    print("\n== circuit breaker: DefaultCircuitBreaker.call vs pybreaker and aiobreaker\n")
    _breaker.main()


if __name__ == "__main__":
    main(sys.argv[1:])
