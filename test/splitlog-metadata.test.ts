/**
 * The splitlog index's batched reads (Metadata.lookup): lookups outside a
 * transaction share one read transaction until the end of the event-loop
 * turn, and any write made in that turn is committed when it returns, not
 * when the turn ends (another connection, like another process, sees it).
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { Metadata } from '../src/backends/splitlog/metadata.js';
import { RecordType } from '../src/backends/splitlog/record.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-meta-');
after(() => scratch.remove());

test('a write after a lookup in the same turn is committed at once, and lookups see the index', async () => {
  const file = path.join(scratch.dir, 'meta.sqlite');
  const meta = Metadata.open(file, { create: true });
  const other = new Database(file, { readonly: true });
  try {
    meta.immediate(() => meta.apply({ type: RecordType.BlockPut, name: 'k1', loc: { log: 1, offset: 0, length: 10 } }));
    assert.deepEqual(meta.lookup('block', 'k1'), { log: 1, offset: 0, length: 10 });
    assert.equal(meta.db.inTransaction, true, 'the lookup opened the shared read transaction');
    meta.setMeta('probe', 'written');
    assert.equal(meta.db.inTransaction, false, 'the write ended it');
    const seen = other.prepare('SELECT value FROM meta WHERE name = ?').get('probe') as { value: string } | undefined;
    assert.equal(seen?.value, 'written');
    // An index write after lookups in the same turn commits at once too.
    assert.equal(meta.lookup('block', 'k2'), null);
    meta.immediate(() => meta.apply({ type: RecordType.BlockPut, name: 'k2', loc: { log: 1, offset: 10, length: 10 } }));
    assert.equal((other.prepare('SELECT count(*) AS n FROM blocks').get() as { n: number }).n, 2);
    assert.deepEqual(meta.lookup('block', 'k2'), { log: 1, offset: 10, length: 10 });
    // The read transaction ends by itself at the end of the turn.
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(meta.db.inTransaction, false);
  } finally {
    other.close();
    meta.close();
  }
});
