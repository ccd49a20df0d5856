/**
 * The server side against hostile input (issue 2, conformance item 5):
 * every malformed frame or message is answered with badRequest or a clean
 * close, never a crash, a hang or unbounded memory.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RawWire } from './support/raw-wire.js';

async function started(): Promise<RawWire> {
  const wire = new RawWire('backend-fs', ['memory']);
  const hello = (await wire.next()) as [string, Record<string, unknown>];
  assert.equal(hello[0], 'hello');
  return wire;
}

function assertBadRequest(response: unknown, id: number): void {
  assert.ok(Array.isArray(response), 'response is an array');
  assert.equal(response[0], id);
  assert.equal(response[1], 1);
  assert.equal((response[2] as { code: string }).code, 'badRequest');
}

async function assertUsable(wire: RawWire, id: number): Promise<void> {
  wire.send([id, 'put', 'alive', Buffer.from('yes')]);
  assert.deepEqual(await wire.nextResponse(), [id, 0, null]);
  wire.send([id + 1, 'get', 'alive']);
  const response = (await wire.nextResponse()) as unknown[];
  assert.equal(Buffer.from(response[2] as Uint8Array).toString(), 'yes');
}

function assertNoStackTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /\n\s+at /, `stack trace on stderr: ${stderr}`);
}

describe('the wire against hostile input', () => {
  it('the first frame is the greeting, with protocol 1, blockSize, writable and features', async () => {
    const wire = new RawWire('backend-fs', ['memory']);
    const [kind, body] = (await wire.next()) as [string, Record<string, unknown>];
    assert.equal(kind, 'hello');
    assert.equal(body.protocol, 1);
    assert.equal(body.backend, 'memory');
    assert.ok((body.blockSize as number) >= 65536);
    assert.equal(body.writable, true);
    assert.deepEqual(body.features, ['remove', 'listBlocks', 'admin']);
    wire.end();
    assert.equal((await wire.exited).code, 0);
  });

  it('an unknown op is answered with badRequest and the stream stays usable', async () => {
    const wire = await started();
    wire.send([7, 'frobnicate', 'x']);
    assertBadRequest(await wire.nextResponse(), 7);
    await assertUsable(wire, 8);
    wire.end();
    assert.equal((await wire.exited).code, 0);
  });

  it('wrong argument types and counts are answered with badRequest', async () => {
    const wire = await started();
    const cases: unknown[][] = [
      [1, 'put', 'key', 'data as a string, not bin'],
      [2, 'put', 42, Buffer.from('x')],
      [3, 'put', 'key'],
      [4, 'get', 'key', 'extra'],
      [5, 'existsMany', 'not-an-array'],
      [6, 'existsMany', [1, 2]],
      [7, 'listBlocks', null, 'ten'],
      [8, 'lockTag', 'tag', 'owner', 'sixty'],
      [9, 'lockTag', 'tag', 'owner', -1],
      [10, 'admin', 5, []],
      [11, 'admin', 'help', [1]],
      [12, 'setTag', 'tag', null],
      [13, 'get', '../../etc/passwd'],
      [14, 'setTag', 'a/b', Buffer.from('x')],
      [15, 'listBlocks', { cursor: 1 }, 10],
    ];
    for (const message of cases) wire.send(message);
    const answered = new Set<number>();
    for (let i = 0; i < cases.length; i += 1) {
      const response = (await wire.nextResponse()) as unknown[];
      assertBadRequest(response, response[0] as number);
      answered.add(response[0] as number);
    }
    assert.equal(answered.size, cases.length);
    await assertUsable(wire, 100);
    wire.end();
    assert.equal((await wire.exited).code, 0);
  });

  it('messages with no usable id get an error notice and the stream stays usable', async () => {
    const wire = await started();
    const bad: unknown[] = [{ op: 'put' }, 'a string', 17, [0, 'get', 'k'], [-1, 'get', 'k'], [2 ** 32, 'get', 'k'], ['1', 'get', 'k'], [1.5, 'get', 'k'], []];
    for (const message of bad) wire.send(message);
    for (let i = 0; i < bad.length; i += 1) {
      const notice = (await wire.next()) as unknown[];
      assert.equal(notice[0], 'log');
      assert.equal(notice[1], 'error');
      assert.match(notice[2] as string, /badRequest/);
    }
    await assertUsable(wire, 1);
    wire.end();
    assert.equal((await wire.exited).code, 0);
  });

  it('a frame that is not MessagePack gets an error notice and the stream stays usable', async () => {
    const wire = await started();
    wire.sendRaw(Buffer.from([0, 0, 0, 2, 0x92, 0x01]));
    const notice = (await wire.next()) as unknown[];
    assert.equal(notice[0], 'log');
    await assertUsable(wire, 1);
    wire.end();
    assert.equal((await wire.exited).code, 0);
  });

  it('a length over 64 MiB closes the stream cleanly without buffering it', async () => {
    const wire = await started();
    wire.sendRaw(Buffer.from([0x7f, 0xff, 0xff, 0xff]));
    const notice = (await wire.next()) as unknown[];
    assert.equal(notice[0], 'log');
    assert.match(notice[2] as string, /frame length/);
    const { code } = await wire.exited;
    assert.equal(code, 1);
    assertNoStackTrace(wire.stderr);
  });

  it('a zero-length frame closes the stream cleanly', async () => {
    const wire = await started();
    wire.sendRaw(Buffer.from([0, 0, 0, 0]));
    assert.equal((await wire.next() as unknown[])[0], 'log');
    assert.equal((await wire.exited).code, 1);
  });

  it('input ending inside a frame ends the backend cleanly after answering what came whole', async () => {
    const wire = await started();
    wire.send([1, 'put', 'k', Buffer.from('v')]);
    wire.sendRaw(Buffer.from([0, 0, 0, 50, 0x94]));
    wire.end();
    assert.deepEqual(await wire.nextResponse(), [1, 0, null]);
    assert.equal((await wire.exited).code, 0);
    assertNoStackTrace(wire.stderr);
  });

  it('close is answered, then the backend exits 0', async () => {
    const wire = await started();
    wire.send([1, 'put', 'k', Buffer.from('v')]);
    wire.send([2, 'close']);
    assert.deepEqual(await wire.nextResponse(), [1, 0, null]);
    assert.deepEqual(await wire.nextResponse(), [2, 0, null]);
    assert.equal((await wire.exited).code, 0);
  });

  it('random bytes never crash the backend with a stack trace (property)', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
      const wire = await started();
      wire.sendRaw(bytes);
      wire.end();
      const { code, signal } = await wire.exited;
      assert.equal(signal, null);
      assert.ok(code === 0 || code === 1, `exit ${code}`);
      assertNoStackTrace(wire.stderr);
    }), { numRuns: 15 });
  });

  it('a backend that cannot start sends fatal and exits non-zero', async () => {
    const wire = new RawWire('backend-fs', ['fs']);
    const message = (await wire.next()) as [string, { code: string; message: string }];
    assert.equal(message[0], 'fatal');
    assert.equal(message[1].code, 'badRequest');
    assert.match(message[1].message, /usage/);
    assert.equal((await wire.exited).code, 2);
    assertNoStackTrace(wire.stderr);
  });
});
