// KV through the SDK against a running Berth: BERTH_API_URL and a project token in
// BERTH_TOKEN (crates/berth/tests/sdk_typescript.rs starts one and runs these).
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { BerthError, createClient } from '../src/index.js';

// Each run its own key prefix, so reruns against one server never see old keys.
const run = `t${process.pid}-${Date.now()}`;
const key = (name) => `${run}:${name}`;

test('configuration comes from the environment, and is checked', () => {
  const client = createClient();
  assert.equal(client.projectId, undefined);
  assert.throws(() => createClient({ baseUrl: '', token: '' }), BerthError);
  assert.throws(() => createClient({ projectId: 'abc' }), /not a project id/);
  assert.equal(client.withProject(7).projectId, 7);
});

test('values round-trip as JSON; missing keys are null', async () => {
  const { kv } = createClient();
  for (const [name, value] of [
    ['object', { name: 'Ada', tags: ['a', 'b'], n: 1.5 }],
    ['string', 'hello'],
    ['number', 42],
    ['array', [1, 'two', null]],
    ['bool', false],
  ]) {
    assert.equal(await kv.set(key(name), value), 'OK');
    assert.deepEqual(await kv.get(key(name)), value, name);
  }
  assert.equal(await kv.get(key('missing')), null);
});

test('nx, xx, expiry, ttl and expire', async () => {
  const { kv } = createClient();
  await kv.set(key('n'), 1);
  assert.equal(await kv.set(key('n'), 2, { nx: true }), null);
  assert.equal(await kv.set(key('absent'), 2, { xx: true }), null);
  assert.equal(await kv.get(key('absent')), null);
  assert.equal(await kv.set(key('n'), 3, { xx: true }), 'OK');
  assert.equal(await kv.get(key('n')), 3);

  await kv.set(key('session'), 's', { ex: 100 });
  const ttl = await kv.ttl(key('session'));
  assert.ok(ttl >= 1 && ttl <= 100, String(ttl));
  await kv.set(key('short'), 's', { px: 50_000 });
  const short = await kv.ttl(key('short'));
  assert.ok(short >= 1 && short <= 50, String(short));
  assert.equal(await kv.ttl(key('n')), -1);
  assert.equal(await kv.ttl(key('missing')), -2);
  assert.equal(await kv.expire(key('n'), 300), 1);
  assert.equal(await kv.expire(key('missing'), 300), 0);
});

test('incr, keys and del', async () => {
  const { kv } = createClient();
  assert.equal(await kv.incr(key('hits')), 1);
  assert.equal(await kv.incr(key('hits'), 5), 6);
  assert.equal(await kv.incr(key('hits'), -2), 4);
  await kv.set(key('user:1'), 'a');
  await kv.set(key('user:2'), 'b');
  assert.deepEqual(await kv.keys(key('user:*')), [key('user:1'), key('user:2')]);
  assert.equal(await kv.del(key('user:1'), key('user:2'), key('missing')), 2);
  assert.equal(await kv.del([key('hits')]), 1);
  assert.deepEqual(await kv.keys(key('user:*')), []);
});

test('errors are BerthErrors with the problem+json', async () => {
  const { kv } = createClient();
  await assert.rejects(kv.set(key('k'), 1, { nx: true, xx: true }), (err) => {
    assert.ok(err instanceof BerthError);
    assert.equal(err.status, 400);
    assert.equal(err.title, 'Bad Request');
    assert.match(err.detail, /not both/);
    return true;
  });
  await assert.rejects(kv.get(''), { name: 'BerthError', status: 400 });
  const stranger = createClient({ token: 'not-a-token' });
  await assert.rejects(stranger.kv.get(key('k')), { status: 401 });
  // A project token may not name another project (ids are never 0 or negative).
  await assert.rejects(createClient().withProject(999_999_999).kv.get(key('k')), { status: 403 });
  const nowhere = createClient({ baseUrl: 'http://127.0.0.1:9' });
  await assert.rejects(nowhere.kv.get(key('k')), { status: 0, title: 'Network error' });
});
