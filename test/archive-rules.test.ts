import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { matchRegex, regexRule } from '../src/archive/regex-rules.js';
import { decide, parseExpr, parseRule, parseRuleFile, type Candidate } from '../src/archive/rules.js';
import { ls } from '../src/cli/cairn/ls.js';
import { snapshotCommand } from '../src/cli/cairn/snapshot.js';
import { makeContext } from './cairn-fixtures.js';
import { scratchDir } from './support/scratch.js';

const scratch = scratchDir('cairn-rules-');
after(() => scratch.remove());

const file = (rel: string, size = 10, ageMs = 0): Candidate => ({ abs: `/src/${rel}`, rel, type: 'file', size, mtimeMs: Date.now() - ageMs });

test('rule expressions: glob, name, size, modified-within, type, not/and/or, parentheses, quotes', () => {
  const rules = [
    parseRule('exclude name *.o or size-above 1M', null),
    parseRule('include name keep.o', null),
    parseRule('exclude glob "build dir/**" and not modified-within 1d', null),
    parseRule('exclude (type symlink or type other) and name x*', null),
  ];
  assert.equal(decide(rules, file('a.o')), false);
  assert.equal(decide(rules, file('sub/keep.o')), true, 'a later rule overrides');
  assert.equal(decide(rules, file('big', 2 * 1024 * 1024)), false);
  assert.equal(decide(rules, file('small.c')), null);
  assert.equal(decide(rules, file('build dir/deep/old', 1, 3 * 86400e3)), false);
  assert.equal(decide(rules, file('build dir/deep/new', 1, 1000)), null);
  assert.equal(decide(rules, { ...file('xlink'), type: 'symlink' }), false);
  assert.throws(() => parseExpr('name'), /expected a pattern/);
  assert.throws(() => parseExpr('size-above lots'), /a size is/);
  assert.throws(() => parseExpr('bogus x'), /unknown word "bogus"/);
  assert.throws(() => parseRule('name x', null), /starts with include or exclude/);
});

test('rules bound to a directory apply only below it', () => {
  const rules = parseRuleFile('# comment\n\nexclude name *.tmp\n', '/src/sub');
  assert.equal(decide(rules, file('sub/a.tmp')), false);
  assert.equal(decide(rules, file('a.tmp')), null);
});

test('the regex list: first match decides, directories carry a trailing slash', () => {
  const rules = [regexRule(true, '^/\\.ssh/'), regexRule(false, '^/\\.[^/]+/$')];
  assert.equal(matchRegex(rules, '/.ssh/'), true);
  assert.equal(matchRegex(rules, '/.cache/'), false);
  assert.equal(matchRegex(rules, '/.profile'), null);
  assert.throws(() => regexRule(false, '('), /bad exclude pattern/);
});

test('a snapshot honours --exclude/--include in order, .cairn files and config rules', async () => {
  const src = path.join(scratch.dir, 'src');
  for (const d of ['.cache/x', '.ssh', 'proj/build', 'proj/src', 'other']) mkdirSync(path.join(src, d), { recursive: true });
  for (const f of ['.cache/x/f', '.ssh/id', 'proj/build/out.o', 'proj/src/main.c', 'proj/src/main.o', 'proj/src/keep.o', 'other/old.log', 'other/new.log', 'top.iso']) {
    writeFileSync(path.join(src, f), f);
  }
  utimesSync(path.join(src, 'other/old.log'), 1_000_000, 1_000_000);
  writeFileSync(path.join(src, 'proj/.cairn'), 'exclude name *.o\nexclude glob build\n');
  writeFileSync(path.join(src, 'proj/src/.cairn'), 'include name keep.o\n');
  const ctx = await makeContext(scratch.dir);
  ctx.config.rules = [{ exclude: 'name *.log and not modified-within 30d' }, { exclude: 'name *.iso', under: src }];
  await snapshotCommand(ctx, 't', [src], { quiet: true, workers: 0, filters: [{ include: '^/\\.ssh/' }, { exclude: '^/\\.[^/]+/$' }] });
  const names = async (p: string): Promise<string[]> => (await ls(ctx, `t${p}`)).map((e) => e.name.toString()).sort();
  assert.deepEqual(await names(''), ['.ssh', 'other', 'proj']);
  assert.deepEqual(await names('/proj'), ['.cairn', 'src']);
  assert.deepEqual(await names('/proj/src'), ['.cairn', 'keep.o', 'main.c']);
  assert.deepEqual(await names('/other'), ['new.log']);
});
