"""redis-py against the tidings RESP server, as an application would use it.

Usage: redis_py.py PORT PASSWORD_PORT PASSWORD

PORT serves without a password, PASSWORD_PORT with --requirepass PASSWORD.
Each check prints its name; any failure raises, and the exit status is
non-zero. Every wait is bounded.
"""

import sys
import threading
import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PORT, PW_PORT, PASSWORD = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
DEADLINE = 10.0


def until(what, condition):
    end = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting until " + what)
        time.sleep(0.005)


def subscriber(client, *channels):
    """A pubsub subscribed to `channels`, confirmations consumed."""
    p = client.pubsub()
    p.subscribe(*channels)
    for _ in channels:
        m = p.get_message(timeout=DEADLINE)
        assert m and m["type"] == "subscribe", m
    return p


def check(name):
    def run(f):
        f()
        print("redis-py: ok:", name, flush=True)
        return f

    return run


@check("pipeline() sends MULTI/PUBLISH/EXEC and gets every count")
def _():
    r = redis.Redis(port=PORT)
    p = subscriber(r, "a")
    pipe = r.pipeline()  # transaction=True: MULTI ... EXEC
    pipe.publish("a", "1").publish("b", "2").publish("a", "3")
    assert pipe.execute() == [1, 0, 1]
    got = [p.get_message(timeout=DEADLINE)["data"] for _ in range(2)]
    assert got == [b"1", b"3"], got
    # Without a transaction too, and an empty one.
    pipe = r.pipeline(transaction=False)
    assert pipe.publish("a", "4").publish("a", "5").execute() == [1, 1]
    assert r.pipeline().execute() == []
    p.close()


@check("a failing command inside pipeline() raises, the rest is discarded")
def _():
    r = redis.Redis(port=PORT)
    pipe = r.pipeline()
    pipe.publish("a", "x")
    pipe.execute_command("PUBLISH", "only-one-argument")
    try:
        pipe.execute()
    except redis.ResponseError as e:
        assert "wrong number of arguments" in str(e) or "EXECABORT" in str(e), e
    else:
        raise AssertionError("the transaction did not fail")


@check("a password-protected connection")
def _():
    r = redis.Redis(port=PW_PORT, password=PASSWORD)
    assert r.ping()
    assert r.publish("x", "y") == 0
    with_user = redis.Redis(port=PW_PORT, username="default", password=PASSWORD)
    assert with_user.ping()
    # (No retries: redis-py would retry a refused login with backoff.)
    once = Retry(NoBackoff(), 0)
    for bad in (
        redis.Redis(port=PW_PORT, retry=once),
        redis.Redis(port=PW_PORT, password="wrong", retry=once),
        redis.Redis(port=PW_PORT, username="default", password="wrong", retry=once),
    ):
        try:
            bad.ping()
        except redis.AuthenticationError:
            pass
        else:
            raise AssertionError("an unauthenticated client was served")
    # RESP3 logs in through HELLO ... AUTH.
    r3 = redis.Redis(port=PW_PORT, password=PASSWORD, protocol=3)
    assert r3.ping()
    # A client configured with a user on a server without a password.
    assert redis.Redis(port=PORT, username="default", password="any").ping()


@check("run_in_thread delivers every message in order to its handler")
def _():
    r = redis.Redis(port=PORT)
    got = []
    p = r.pubsub()
    p.subscribe(**{"threaded": lambda m: got.append(m["data"])})
    worker = p.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        until("subscribed", lambda: r.pubsub_numsub("threaded") == [(b"threaded", 1)])
        for i in range(200):
            assert r.publish("threaded", str(i)) == 1
        until("200 messages", lambda: len(got) == 200)
        assert got == [str(i).encode() for i in range(200)], got[:5]
    finally:
        worker.stop()
        worker.join(DEADLINE)
    assert not worker.is_alive()
    until("unsubscribed", lambda: r.pubsub_numsub("threaded") == [(b"threaded", 0)])


@check("RESP3 pushes reach push_handler_func")
def _():
    r3 = redis.Redis(port=PORT, protocol=3)
    pushes = []
    p = r3.pubsub(push_handler_func=pushes.append)
    p.subscribe("pushed")
    p.psubscribe("push*")
    publisher = redis.Redis(port=PORT, protocol=3)
    until("subscribed", lambda: publisher.pubsub_numsub("pushed") == [(b"pushed", 1)])
    assert publisher.publish("pushed", "hello") == 2
    end = time.monotonic() + DEADLINE
    while len(pushes) < 4 and time.monotonic() < end:
        p.get_message(timeout=0.1)
    assert pushes == [
        [b"subscribe", b"pushed", 1],
        [b"psubscribe", b"push*", 2],
        [b"message", b"pushed", b"hello"],
        [b"pmessage", b"push*", b"pushed", b"hello"],
    ], pushes
    p.close()


@check("the server reports 7.0.15")
def _():
    r = redis.Redis(port=PORT)
    assert r.info("server")["redis_version"] == "7.0.15"
    assert r.execute_command("HELLO", "3")[b"version"] == b"7.0.15"


print("redis-py: all checks passed")
