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
 * This file only starts what a snapshot needs first, before the commands'
 * modules are loaded (cairn-program.ts, loaded after): the listing thread,
 * which then starts while they load (listing-prestart.ts). `npm run build`
 * bundles both and what they import (scripts/bundle-cli.mjs).
 */
import { prestartListingWorker } from '../archive/listing-prestart.js';
import { commandOf } from './command-of.js';

if (commandOf(process.argv.slice(2)) === 'snapshot' && process.env.CAIRN_LISTING_THREAD !== '0') prestartListingWorker();
await import('./cairn-program.js');
