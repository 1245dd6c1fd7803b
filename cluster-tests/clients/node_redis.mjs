// node-redis, with its default settings, against a Keycafe node or cluster.
//
// Usage: node node_redis.mjs standalone|cluster HOST:PORT
//
// `standalone` connects with `createClient({ url })`, `cluster` with
// `createCluster({ rootNodes: [{ url }] })`: nothing else is set, so the
// client speaks what it speaks by default (RESP3 since node-redis 6, which
// opens with `HELLO 3`). Each step prints `ok <name>`; the first failure
// prints its error and exits with status 1. cluster-tests/tests/redis_clients.rs
// runs this; ./test.sh installs node-redis (the version in package.json)
// into node_modules beside this file.
//
// A new step is one more entry of `steps`: they run in order, each with the
// connected client and the mode.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { createClient, createCluster } from 'redis';

// Sends a command as it is. A cluster client needs a key to route it by
// (undefined: a node of its choice) and whether it only reads.
function send(client, mode, args) {
  return mode === 'cluster' ? client.sendCommand(undefined, true, args) : client.sendCommand(args);
}

// A RESP3 map as node-redis returns it by default (a plain object), or
// converted from a Map.
function plain(map) {
  return map instanceof Map ? Object.fromEntries(map) : { ...map };
}

const steps = {
  async speaksResp3(client, mode) {
    // The connection really negotiated RESP3 with HELLO 3.
    const hello = plain(await send(client, mode, ['HELLO']));
    assert.equal(hello.proto, 3, JSON.stringify(hello));
  },

  async ping(client) {
    assert.equal(await client.ping(), 'PONG');
  },

  async setGetDel(client) {
    assert.equal(await client.set('{js}greeting', 'hello'), 'OK');
    assert.equal(await client.get('{js}greeting'), 'hello');
    assert.equal(await client.del('{js}greeting'), 1);
    assert.equal(await client.get('{js}greeting'), null);
  },

  async incr(client) {
    await client.del('{js}counter');
    assert.equal(await client.incr('{js}counter'), 1);
    assert.equal(await client.incrBy('{js}counter', 41), 42);
    assert.equal(await client.decr('{js}counter'), 41);
  },

  async expireAndTtl(client) {
    await client.set('{js}session', 'data');
    assert.equal(await client.ttl('{js}session'), -1);
    assert.equal(await client.expire('{js}session', 100), 1);
    const ttl = await client.ttl('{js}session');
    assert.ok(ttl >= 99 && ttl <= 100, `ttl ${ttl}`);
    assert.equal(await client.ttl('{js}missing'), -2);
  },

  async mgetWithAHashTag(client) {
    await client.mSet({ '{user2}.name': 'grace', '{user2}.lang': 'en' });
    assert.deepEqual(
      await client.mGet(['{user2}.name', '{user2}.missing', '{user2}.lang']),
      ['grace', null, 'en'],
    );
  },

  async missingKeyIsNull(client) {
    assert.equal(await client.get('{js}never-set'), null);
    assert.equal(await client.getDel('{js}never-set'), null);
  },

  async transaction(client) {
    // MULTI ... EXEC, on one slot (a hash tag) for the cluster client.
    const replies = await client.multi().set('{tx}a', '1').incr('{tx}a').get('{tx}missing').get('{tx}a').exec();
    assert.deepEqual(replies, ['OK', 2, null, '2']);
  },

  async scan(client, mode) {
    // scanIterator walks one node's SCAN: every primary's, for the cluster.
    const names = Array.from({ length: 50 }, (_, i) => `{scan${i}}:js`);
    for (const name of names) await client.set(name, 'x');
    const nodes = mode === 'cluster'
      ? await Promise.all(client.masters.map((master) => client.nodeClient(master)))
      : [client];
    const found = new Set();
    for (const node of nodes) {
      for await (const keys of node.scanIterator({ MATCH: '{scan*}:js', COUNT: 10 })) {
        for (const key of [].concat(keys)) found.add(key);
      }
    }
    assert.deepEqual([...found].sort(), [...names].sort());
  },

  async configGet(client, mode) {
    assert.deepEqual(plain(await send(client, mode, ['CONFIG', 'GET', 'maxmemory'])), { maxmemory: '0' });
    if (mode === 'standalone') {
      assert.deepEqual(plain(await client.configGet('maxmemory')), { maxmemory: '0' });
    }
  },
};

async function connect(mode, address) {
  const url = `redis://${address}`;
  if (mode === 'standalone') {
    return createClient({ url }).on('error', (err) => console.log(`client error: ${err}`)).connect();
  }
  if (mode === 'cluster') {
    return createCluster({ rootNodes: [{ url }] }).on('error', (err) => console.log(`cluster error: ${err}`)).connect();
  }
  throw new Error(`unknown mode ${mode}: standalone or cluster`);
}

const [mode, address] = process.argv.slice(2);
const version = createRequire(import.meta.url)('redis/package.json').version;
console.log(`node-redis ${version}, ${mode}, ${address}`);
const client = await connect(mode, address);
for (const [name, run] of Object.entries(steps)) {
  try {
    await run(client, mode);
  } catch (err) {
    console.log(`FAILED ${name}`);
    console.log(err);
    process.exit(1);
  }
  console.log(`ok ${name}`);
}
await client.close();
