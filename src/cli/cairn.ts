#!/usr/bin/env node
/**
 * cairn: zero-knowledge, deduplicated, encrypted snapshots.
 *
 * The installed command is bin/cairn, which starts this file with glibc
 * asked to back large allocations with transparent huge pages (`madvise`
 * mode): scrypt's 64 MiB and the block buffers then cost a page fault per
 * 2 MiB instead of per 4 KiB. (A shell launcher, not `env -S` on this line:
 * BusyBox's env, Alpine's, has no -S.)
 *
 *     cairn init [--archive IDENTIFIER]
 *     cairn snapshot home ~/
 *     cairn ls home
 *     cairn extract home /tmp/restore
 *
 * This file only starts the worker thread a command needs first, before
 * the commands' modules are loaded (cairn-program.ts, loaded after), so
 * that it starts while they load (worker-prestart.ts): a snapshot's listing
 * thread, an extract's restore thread. `npm run build` bundles both and
 * what they import (scripts/bundle-cli.mjs).
 */
import { listingThreadByDefault, prestartWorker, restoreThreadByDefault } from '../archive/worker-prestart.js';
import { commandOf } from './command-of.js';

const command = commandOf(process.argv.slice(2));
if (command === 'snapshot' && listingThreadByDefault()) prestartWorker('listing-worker.js');
if (command === 'extract' && restoreThreadByDefault()) prestartWorker('restore-worker.js');
await import('./cairn-program.js');
