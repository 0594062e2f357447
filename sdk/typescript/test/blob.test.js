// Blob through the SDK against a running Berth with Blob enabled: BERTH_API_URL and a project
// token in BERTH_TOKEN (crates/berth/tests/sdk_blob_typescript.rs starts one and runs this).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

import { BerthError, createClient } from '../src/index.js';

const run = `t${process.pid}-${Date.now()}`;
const path = (name) => `${run}/${name}`;

test('put each body type, then read it back', async () => {
  const { blob } = createClient();
  const text = await blob.put(path('hello.txt'), 'hello, blob', { contentType: 'text/plain' });
  assert.equal(text.pathname, path('hello.txt'));
  assert.equal(text.size, 11);
  assert.equal(text.contentType, 'text/plain');
  assert.match(text.url, /^\/api\/blob\/\d+\//);
  assert.ok(text.uploadedAt);
  assert.equal(new TextDecoder().decode(await blob.bytes(text.url)), 'hello, blob');

  const bytes = randomBytes(70_000);
  const fromBytes = await blob.put(path('bytes.bin'), new Uint8Array(bytes));
  assert.equal(fromBytes.size, bytes.length);
  assert.deepEqual(Buffer.from(await blob.bytes(fromBytes.url)), bytes);

  const fromBlob = await blob.put(path('blob.bin'), new Blob([bytes]));
  assert.equal(fromBlob.size, bytes.length);

  // Streamed with duplex: 'half' (a web stream, and a Node stream as an async iterable),
  // larger than any single chunk.
  const big = randomBytes(3 * 1024 * 1024 + 17);
  const chunks = [];
  for (let i = 0; i < big.length; i += 64 * 1024) chunks.push(big.subarray(i, i + 64 * 1024));
  const web = await blob.put(path('web.bin'), Readable.toWeb(Readable.from(chunks)));
  assert.equal(web.size, big.length);
  const node = await blob.put(path('node.bin'), Readable.from(chunks));
  assert.equal(node.size, big.length);
  const response = await blob.get(node.url);
  assert.equal(response.status, 200);
  let received = 0;
  const parts = [];
  for await (const part of response.body) {
    received += part.length;
    parts.push(part);
  }
  assert.equal(received, big.length);
  assert.ok(Buffer.concat(parts).equals(big), 'streamed download equals the upload');
});

test('ranges, head, random suffixes and pathnames', async () => {
  const client = createClient();
  const { blob } = client;
  const info = await blob.put(path('range.txt'), '0123456789', { contentType: 'text/plain' });
  const partial = await blob.get(info.url, { range: [2, 5] });
  assert.equal(partial.status, 206);
  assert.equal(await partial.text(), '2345');
  assert.equal(new TextDecoder().decode(await blob.bytes(info.url, { range: [7] })), '789');

  const head = await blob.head(info.url);
  assert.equal(head.size, 10);
  assert.match(head.contentType, /^text\/plain/);
  assert.equal(head.pathname, path('range.txt'));

  const a = await blob.put(path('same.txt'), 'a', { addRandomSuffix: true });
  const b = await blob.put(path('same.txt'), 'b', { addRandomSuffix: true });
  assert.notEqual(a.pathname, b.pathname);

  // Pathnames with spaces and '#', named by url and, with a projectId, by pathname.
  const odd = await blob.put(path('a dir/odd #1.txt'), 'odd');
  assert.equal(odd.pathname, path('a dir/odd #1.txt'));
  assert.equal(new TextDecoder().decode(await blob.bytes(odd.url)), 'odd');
  const project = Number(odd.url.split('/')[3]);
  const named = client.withProject(project).blob;
  assert.equal(new TextDecoder().decode(await named.bytes(odd.pathname)), 'odd');
  // Without a projectId a pathname cannot be located.
  await assert.rejects(blob.get(odd.pathname), /pathname/);
});

test('list pages, listAll, copy and delete', async () => {
  const { blob } = createClient();
  const names = ['l/1.txt', 'l/2.txt', 'l/3.txt', 'l/4.txt', 'l/5.txt'].map(path);
  for (const name of names) await blob.put(name, name);
  const first = await blob.list({ prefix: path('l/'), limit: 2 });
  assert.equal(first.blobs.length, 2);
  assert.equal(first.hasMore, true);
  assert.ok(first.cursor);
  const all = [];
  for await (const info of blob.listAll({ prefix: path('l/'), limit: 2 })) all.push(info.pathname);
  assert.deepEqual(all.sort(), names);

  const copied = await blob.copy(first.blobs[0].url, path('copy.txt'));
  assert.equal(copied.pathname, path('copy.txt'));
  assert.equal(new TextDecoder().decode(await blob.bytes(copied.url)), first.blobs[0].pathname);

  assert.equal(await blob.delete([copied.url, names[0], path('never')]), 2);
  await assert.rejects(blob.get(copied.url), (err) => err instanceof BerthError && err.status === 404);
  assert.equal(await blob.del(names.slice(1)), 4);
  const left = await blob.list({ prefix: path('l/') });
  assert.deepEqual(left.blobs, []);
  assert.equal(left.hasMore, false);
});
