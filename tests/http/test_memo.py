"""The front's one memo (``compute.http.memo``): one generation, bounded in bytes, no long keys."""

from __future__ import annotations

import threading

from compute.http.memo import ENTRY_BYTES, FrontMemo, key_chars


def test_a_value_is_remembered_for_its_generation_only():
    memo = FrontMemo(max_bytes=100_000)
    memo.put(("url", "/api/fib/7/", ""), 3, "seven")
    assert memo.get(("url", "/api/fib/7/", ""), 3) == "seven"
    assert memo.get(("url", "/api/fib/7/", ""), 4) is None  # a setting changed since
    assert memo.get(("url", "/api/fib/8/", ""), 3) is None


def test_a_newer_generation_forgets_everything_and_an_older_one_is_ignored():
    memo = FrontMemo(max_bytes=100_000)
    memo.put(("host", "a"), 3, True)
    memo.put(("host", "b"), 4, False)
    assert memo.get(("host", "a"), 4) is None and memo.get(("host", "b"), 4) is False
    assert len(memo) == 1
    memo.put(("host", "c"), 3, True)  # a request that began before the change
    assert len(memo) == 1 and memo.get(("host", "c"), 3) is None


def test_entries_cost_their_key_characters_their_bytes_and_a_fixed_allowance():
    memo = FrontMemo(max_bytes=100_000)
    key = ("kept", "/api/fib/7/", "", "testserver", None, "gzip", False)
    assert key_chars(key) == len("kept/api/fib/7/testservergzip")
    memo.put(key, 1, "answer", nbytes=300)
    assert memo.nbytes == key_chars(key) + 300 + ENTRY_BYTES
    memo.put(key, 1, "again", nbytes=100)  # replaced, not added
    assert memo.nbytes == key_chars(key) + 100 + ENTRY_BYTES


def test_the_memo_is_bounded_in_bytes_and_emptied_when_full():
    budget = 64 * 1024
    memo = FrontMemo(max_bytes=budget)
    sizes = []
    for i in range(10_000):
        memo.put(("url", f"/api/fib/{i}/", "digits=" + "9" * 200), 1, i, nbytes=1000)
        sizes.append(memo.nbytes)
        assert memo.nbytes <= budget
    assert min(sizes[100:]) < budget // 4  # emptied, then filled again
    assert memo.get(("url", "/api/fib/9999/", "digits=" + "9" * 200), 1) == 9999  # the latest


def test_a_key_longer_than_the_limit_is_not_remembered():
    memo = FrontMemo(max_bytes=10 * 1024 * 1024, max_key_chars=4096)
    junk = ("kept", "/api/fib/7/", "x" * 5000, "testserver", None, None, False)
    memo.put(junk, 1, "answer")
    assert memo.get(junk, 1) is None and len(memo) == 0 and memo.nbytes == 0
    at_the_limit = ("host", "h" * (4096 - len("host")))
    memo.put(at_the_limit, 1, False)
    assert memo.get(at_the_limit, 1) is False


def test_an_entry_larger_than_a_quarter_of_the_budget_is_not_remembered():
    memo = FrontMemo(max_bytes=8 * 1024)
    memo.put(("reply", 7), 1, "small")
    memo.put(("reply", 8), 1, "large", nbytes=4 * 1024)
    assert memo.get(("reply", 7), 1) == "small" and memo.get(("reply", 8), 1) is None


def test_concurrent_puts_keep_the_count_within_the_budget():
    budget = 32 * 1024
    memo = FrontMemo(max_bytes=budget)

    def fill(worker: int) -> None:
        for i in range(3000):
            memo.put(("url", f"/w{worker}/{i}", ""), 1, i, nbytes=100)

    threads = [threading.Thread(target=fill, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(memo) * (ENTRY_BYTES + 100) < memo.nbytes <= budget  # no entry went uncounted
