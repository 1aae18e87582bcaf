"""Running code on other database connections, for tests of concurrent requests.

Each test runs inside a transaction that is rolled back. Work done in another thread uses
that thread's own connection: it commits for real and is seen by the test (READ COMMITTED),
and it must be cleaned up by the test, again from another thread.
"""

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import connection

T = TypeVar("T")


def on_own_connection(fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread (so on a fresh, autocommitting connection) and return its result."""
    return in_parallel(fn, 1)[0]


def in_parallel(fn: Callable[[], T], count: int) -> list[T]:
    """Run `fn` `count` times at once, each on its own connection; results in start order.
    A barrier releases them together so they really race."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    return results
