"""The app scenario with redis-py, unmodified and with its default settings, against kvstore.

Run by tests/redis/clients_test.ts: python redis_py_scenario.py PORT TOKEN STEP,STEP,...
Each step asserts what a real app relies on; "restart" prints RESTART and waits for a line on
stdin while the test restarts the server on the same port. Prints "done STEP" per step; exits
non-zero with the failing step's error otherwise.
"""
import sys
import threading
import time

import redis


def main() -> None:
    port, token, steps = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(",")
    r = redis.Redis(host="127.0.0.1", port=port, password=token)

    def connect() -> None:
        assert r.ping() is True
        info = r.client_info()
        assert info["lib-name"] == "redis-py", info
        assert str(info["resp"]) in ("2", "3"), info
        assert r.info("server")["redis_version"].startswith("7."), "redis_version"

    def pipeline() -> None:
        pipe = r.pipeline(transaction=False)
        for i in range(200):
            pipe.set(f"py:pipe:{i}", i)
        for i in range(200):
            pipe.get(f"py:pipe:{i}")
        replies = pipe.execute()
        assert replies[:200] == [True] * 200, replies[:3]
        assert replies[200:] == [str(i).encode() for i in range(200)], replies[200:203]

    def ttl() -> None:
        assert r.set("py:ttl", "v", ex=100) is True
        assert 0 < r.ttl("py:ttl") <= 100
        assert 0 < r.pttl("py:ttl") <= 100_000
        assert r.persist("py:ttl") is True
        assert r.ttl("py:ttl") == -1

    def counters() -> None:
        r.delete("py:counter")
        assert r.incr("py:counter") == 1
        assert r.incrby("py:counter", 5) == 6
        assert r.decr("py:counter") == 5
        assert r.incrbyfloat("py:counter", 2.5) == 7.5
        r.set("py:text", "abc")
        try:
            r.incr("py:text")
            raise AssertionError("INCR of a non-integer succeeded")
        except redis.ResponseError as error:
            assert "not an integer" in str(error), error

    def multi() -> None:
        r.set("py:tx:b", "old")
        r.delete("py:tx:n")
        pipe = r.pipeline(transaction=True)
        pipe.set("py:tx:a", "1").incr("py:tx:n").delete("py:tx:b").get("py:tx:a")
        replies = pipe.execute()
        assert replies == [True, 1, 1, b"1"], replies
        assert r.exists("py:tx:b") == 0

    def watch() -> None:
        r.set("py:watched", 0)
        rounds = 25

        def worker() -> None:
            client = redis.Redis(host="127.0.0.1", port=port, password=token)
            for _ in range(rounds):
                with client.pipeline() as pipe:
                    while True:
                        try:
                            pipe.watch("py:watched")
                            value = int(pipe.get("py:watched"))
                            pipe.multi()
                            pipe.set("py:watched", value + 1)
                            pipe.execute()
                            break
                        except redis.WatchError:
                            continue
            client.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert int(r.get("py:watched")) == 2 * rounds, r.get("py:watched")

    def scan() -> None:
        pipe = r.pipeline(transaction=False)
        for i in range(10_000):
            pipe.set(f"py:scan:{i}", i)
        pipe.execute()
        found = set(r.scan_iter(match="py:scan:*", count=500))
        assert len(found) == 10_000, len(found)

    def expiry() -> None:
        r.set("py:expiring", "v", px=300)
        assert r.get("py:expiring") == b"v"
        deadline = time.time() + 10
        while r.get("py:expiring") is not None:
            assert time.time() < deadline, "the key did not expire"
            time.sleep(0.05)
        assert r.exists("py:expiring") == 0

    def restart() -> None:
        r.set("py:durable", "kept")
        print("RESTART", flush=True)
        sys.stdin.readline()
        # The same client object: redis-py reconnects by itself.
        assert r.get("py:durable") == b"kept"
        assert r.ping() is True

    actions = {
        "connect": connect,
        "pipeline": pipeline,
        "ttl": ttl,
        "counters": counters,
        "multi": multi,
        "watch": watch,
        "scan": scan,
        "expiry": expiry,
        "restart": restart,
    }
    for step in steps:
        try:
            actions[step]()
        except Exception as error:  # noqa: BLE001 - report any failure with its step
            print(f"FAILED {step}: {type(error).__name__}: {error}", flush=True)
            sys.exit(1)
        print(f"done {step}", flush=True)


if __name__ == "__main__":
    main()
