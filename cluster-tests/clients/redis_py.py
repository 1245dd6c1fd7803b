"""redis-py, with its default settings, against a Keycafe node or cluster.

Usage: redis_py.py standalone|cluster HOST:PORT

`standalone` connects with `redis.Redis(host, port)`, `cluster` with
`redis.cluster.RedisCluster(host, port)`: nothing else is set, so the client
speaks what it speaks by default (RESP3 since redis-py 8, which opens with
`HELLO 3`). Each step prints `ok <name>`; the first failure prints its
traceback and exits with status 1. cluster-tests/tests/redis_clients.rs runs
this; ./test.sh installs redis-py (the version in requirements.txt) into
.venv beside this file.

A new step is one function decorated with `@step`: they run in the order
they are written, each with the connected client and the mode.
"""

import sys
import traceback

import redis
from redis.cluster import RedisCluster

STEPS = []


def step(function):
    STEPS.append(function)
    return function


@step
def speaks_resp3(r, mode):
    # The connection really negotiated RESP3 with HELLO 3.
    info = r.client_info() if mode == "standalone" else r.client_info(target_nodes=RedisCluster.RANDOM)
    assert str(info["resp"]) == "3", info


@step
def ping(r, mode):
    assert r.ping() is True


@step
def set_get_del(r, mode):
    assert r.set("{py}greeting", "hello") is True
    assert r.get("{py}greeting") == b"hello"
    assert r.delete("{py}greeting") == 1
    assert r.get("{py}greeting") is None


@step
def incr(r, mode):
    r.delete("{py}counter")
    assert r.incr("{py}counter") == 1
    assert r.incr("{py}counter", 41) == 42
    assert r.decr("{py}counter") == 41


@step
def expire_and_ttl(r, mode):
    r.set("{py}session", "data")
    assert r.ttl("{py}session") == -1
    assert r.expire("{py}session", 100) is True
    assert 99 <= r.ttl("{py}session") <= 100
    assert r.ttl("{py}missing") == -2


@step
def mget_with_a_hash_tag(r, mode):
    r.mset({"{user1}.name": "ada", "{user1}.lang": "en"})
    assert r.mget(["{user1}.name", "{user1}.missing", "{user1}.lang"]) == [b"ada", None, b"en"]


@step
def missing_key_is_none(r, mode):
    assert r.get("{py}never-set") is None
    assert r.getdel("{py}never-set") is None


@step
def config_get(r, mode):
    # (RedisCluster asks one node, as it does for every keyless command.)
    got = r.config_get("maxmemory")
    assert got == {"maxmemory": "0"}, got


@step
def transaction(r, mode):
    # MULTI ... EXEC, on one slot (a hash tag) for the cluster client.
    with r.pipeline(transaction=True) as pipe:
        pipe.set("{tx}a", "1").incr("{tx}a").get("{tx}missing").get("{tx}a")
        replies = pipe.execute()
    # (RedisCluster's transactions hand SET's reply back as it came: b"OK".)
    assert replies[0] in (True, b"OK") and replies[1:] == [2, None, b"2"], replies


@step
def scan(r, mode):
    # scan_iter walks every node's SCAN (RedisCluster: every primary).
    names = [f"{{scan{i}}}:py" for i in range(50)]
    for name in names:
        r.set(name, "x")
    found = set(r.scan_iter(match="{scan*}:py", count=10))
    assert found == {name.encode() for name in names}, sorted(found)
    assert r.delete(*names[:1]) == 1


def connect(mode, address):
    host, port = address.rsplit(":", 1)
    if mode == "standalone":
        return redis.Redis(host=host, port=int(port))
    if mode == "cluster":
        return RedisCluster(host=host, port=int(port))
    raise SystemExit(f"unknown mode {mode!r}: standalone or cluster")


def main():
    mode, address = sys.argv[1], sys.argv[2]
    print(f"redis-py {redis.__version__}, {mode}, {address}", flush=True)
    r = connect(mode, address)
    for function in STEPS:
        try:
            function(r, mode)
        except Exception:
            print(f"FAILED {function.__name__}", flush=True)
            traceback.print_exc(file=sys.stdout)
            sys.exit(1)
        print(f"ok {function.__name__}", flush=True)
    r.close()


if __name__ == "__main__":
    main()
