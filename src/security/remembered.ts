// Remembered labels: the original owner, mode or context of everything a driver
// relabelled, and which domains still need the new label. Kept in memory and, when
// the host gives a directory, in a small JSON file written before anything is
// changed, so a worker that crashed mid-job can still put the originals back.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../support/atomic-write.js';
import { mkdirPrivate } from '../support/private-dir.js';
import { ErrorType, vmError } from '../common/errors.js';
import { KeyedMutex } from './keyed-mutex.js';

export interface RememberedLabel<T> {
  original: T;
  /** Domain UUIDs that labelled the target and have not restored it yet. */
  holders: string[];
}

/** A target is gone: nothing is left to restore, and that is not a failure. */
export function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'EBADF';
}

export class RememberedLabels<T> {
  private readonly entries = new Map<string, RememberedLabel<T>>();
  private readonly mutex = new KeyedMutex();
  private readonly file?: string;

  constructor(driver: string, dir?: string) {
    if (dir === undefined) return;
    mkdirPrivate(dir);
    this.file = join(dir, `${driver}-labels.json`);
    for (const [key, value] of Object.entries(this.readFile() ?? {})) {
      if (key.startsWith('path:') && value && Array.isArray(value.holders)) this.entries.set(key, value);
    }
  }

  get(key: string): RememberedLabel<T> | undefined {
    return this.entries.get(key);
  }

  /**
   * Labels `key` for `holder`: the first holder reads and remembers the original
   * (persisted before `apply` changes anything); later holders and repeats of the
   * same holder only re-apply, which makes a retried activity harmless.
   */
  async label(key: string, holder: string, readOriginal: () => Promise<T>, apply: () => Promise<void>, undo: (original: T) => Promise<void>): Promise<void> {
    await this.mutex.run(key, async () => {
      const existing = this.entries.get(key);
      if (existing) {
        if (!existing.holders.includes(holder)) {
          existing.holders.push(holder);
          this.persist(key);
        }
        await apply();
        return;
      }
      const original = await readOriginal();
      this.entries.set(key, { original, holders: [holder] });
      this.persist(key);
      try {
        await apply();
      } catch (err) {
        // Half-applied (owner changed, mode not): put back what we can, forget the entry.
        await undo(original).catch(() => undefined);
        this.entries.delete(key);
        this.persist(key);
        throw err;
      }
    });
  }

  /**
   * Drops `holder`; the last one out puts the original back. A target that no
   * longer exists is forgotten. A failed restore keeps the entry for a later try.
   */
  async restore(key: string, holder: string, restore: (original: T) => Promise<void>): Promise<void> {
    await this.mutex.run(key, async () => {
      const entry = this.entries.get(key);
      if (!entry || !entry.holders.includes(holder)) return;
      if (entry.holders.length > 1) {
        entry.holders = entry.holders.filter((h) => h !== holder);
        this.persist(key);
        return;
      }
      try {
        await restore(entry.original);
      } catch (err) {
        if (!isGone(err)) throw err;
      }
      this.entries.delete(key);
      this.persist(key);
    });
  }

  /**
   * Writes one key's entry (or its absence) into the file, leaving the rest of the
   * file alone: another driver object on the same directory (one per activity
   * factory, until the host shares one) keeps its own entries. Only paths go to
   * disk. A descriptor's entry is keyed by its inode, which means nothing once the
   * worker that held the descriptor is gone (the number may even belong to another
   * file by then), so those stay in memory.
   */
  private persist(key: string): void {
    if (this.file === undefined || !key.startsWith('path:')) return;
    const onDisk = this.readFile() ?? {};
    const entry = this.entries.get(key);
    if (entry) onDisk[key] = entry;
    else delete onDisk[key];
    writeFileAtomic(this.file, JSON.stringify(onDisk, null, 1) + '\n');
  }

  private readFile(): Record<string, RememberedLabel<T>> | undefined {
    if (this.file === undefined) return undefined;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as Record<string, RememberedLabel<T>>;
    } catch (err) {
      throw vmError(ErrorType.InternalError, `remembered labels in ${this.file} are unreadable: ${String(err)}`, { file: this.file });
    }
  }
}
