/**
 * Files up to this size are small: a block worker reads each whole into a
 * window it shares with other small files (block-worker.ts). Bigger files
 * are read in windows of their own, and the tree walk lets only a few be
 * read at once, since their windows are a snapshot's peak memory
 * (tree-writer.ts).
 */
export const SMALL_FILE_BYTES = 1024 * 1024;
