import type { BlockEngine, FileWindow, HeldBlock, SmallFile, SmallFileRead } from './block-engine.js';
import type { BlockType } from './format.js';

/**
 * A block engine whose keys are not known yet: every call waits for the
 * real engine, which `ready` gives once the archive is unlocked (or fails
 * with, when the work is given up). It lets a snapshot walk the tree while
 * the passphrase is being stretched. What the engine will be like (whether
 * it copies its input, whether it reads files) must be known beforehand:
 * `makeEngine` decides both from the number of workers.
 */
export class PendingEngine implements BlockEngine {
  private engine: BlockEngine | null = null;
  readonly readFile: ((path: Buffer, size?: number) => AsyncGenerator<FileWindow>) | null;
  readonly readSmallFiles: ((files: SmallFile[]) => Promise<SmallFileRead[]>) | null;

  constructor(private readonly ready: Promise<BlockEngine>, readonly copiesInput: boolean, readsFiles: boolean) {
    ready.then((engine) => {
      this.engine = engine;
    }, () => undefined);
    // Once the engine is there, its own reader: no generator wrapped around another for every file.
    this.readFile = readsFiles ? (path, size) => this.engine?.readFile?.(path, size) ?? this.readFileWhenReady(path, size) : null;
    this.readSmallFiles = readsFiles ? (files) => this.engine?.readSmallFiles?.(files) ?? this.readSmallFilesWhenReady(files) : null;
  }

  async hash(type: BlockType, plaintext: Uint8Array): Promise<HeldBlock> {
    // The caller may reuse its buffer once this returns (copiesInput): a copy waits, not the buffer.
    const own = this.engine === null && this.copiesInput ? Buffer.from(plaintext) : plaintext;
    return (this.engine ?? (await this.ready)).hash(type, own);
  }

  async seal(block: HeldBlock): Promise<Uint8Array> {
    return (this.engine ?? (await this.ready)).seal(block);
  }

  /** Only blocks hashed, so only once the engine is there. */
  drop(block: HeldBlock): void {
    this.engine?.drop(block);
  }

  private async *readFileWhenReady(path: Buffer, size?: number): AsyncGenerator<FileWindow> {
    const engine = this.engine ?? (await this.ready);
    if (engine.readFile === null) throw new Error('the block engine does not read files');
    yield* engine.readFile(path, size);
  }

  private async readSmallFilesWhenReady(files: SmallFile[]): Promise<SmallFileRead[]> {
    const engine = this.engine ?? (await this.ready);
    if (engine.readSmallFiles === null) throw new Error('the block engine does not read files');
    return engine.readSmallFiles(files);
  }

  async close(): Promise<void> {
    const engine = this.engine ?? (await this.ready.catch(() => null));
    await engine?.close();
  }
}
