// QMP client for one QEMU monitor socket.
//
// Every connection goes through usocket rather than node:net. A descriptor handed to QEMU with
// `getfd`/`add-fd` belongs to the QMP connection that carried it (QEMU keeps the SCM_RIGHTS fds
// received on that chardev and the command names them on that monitor), and node:net cannot send
// SCM_RIGHTS at all. One transport for all connections means the connection that ran `getfd` is
// the one that later says `migrate fd:NAME`, with a single code path to test.
// We never negotiate the `oob` capability: without it QEMU stops reading a monitor until the
// current command has finished, so fds sent with one command cannot be replaced by the next's.
import { createRequire } from 'node:module';
import { fstatSync } from 'node:fs';
import type { EventEmitter } from 'node:events';
import { vmError, ErrorType } from '../common/errors.js';
import { forgetInheritable, trackInheritable } from './inherited-fds.js';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

export interface QmpConnectOptions {
  /** Deadline for connect + greeting + qmp_capabilities, default 5000 ms. */
  timeoutMs?: number;
  /** Default per-command deadline, default 30000 ms. */
  commandTimeoutMs?: number;
}

export interface QmpVersion {
  qemu: { major: number; minor: number; micro: number };
  package: string;
}

export interface QmpExecuteOptions {
  timeoutMs?: number;
  /** Sent with SCM_RIGHTS together with the command; keep them open until execute settles. */
  fds?: number[];
}

export interface QmpWaitOptions {
  /** No deadline unless given: events such as MIGRATION may legitimately take minutes. */
  timeoutMs?: number;
  predicate?: (ev: QmpEvent) => boolean;
  signal?: AbortSignal;
}

// The subset of usocket's USocket (a Duplex) used here; the package ships no types.
interface USocketLike extends EventEmitter {
  /** The connected socket's descriptor (set once 'connected' fired). */
  fd?: number;
  connect(path: string): void;
  write(chunk: { data: Buffer; fds?: number[] }, cb: (err?: Error | null) => void): boolean;
  destroy(): void;
}
const { USocket } = createRequire(import.meta.url)('usocket') as { USocket: new () => USocketLike };

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

export class QmpClient {
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const client = new QmpClient(socketPath, opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          vmError(
            ErrorType.QmpTimeout,
            `QMP handshake on ${socketPath} did not finish within ${timeoutMs} ms (QEMU hung, or another client holds the monitor)`,
            { socketPath, timeoutMs },
          ),
        );
      }, timeoutMs);
    });
    try {
      await Promise.race([client.handshake(timeoutMs), deadline]);
      return client;
    } catch (err) {
      await client.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  readonly closed: Promise<Error>;
  private readonly sock: USocketLike = new USocket();
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(ev: QmpEvent) => void>();
  private readonly goneHooks = new Set<(err: Error) => void>();
  private resolveClosed: (err: Error) => void = () => {};
  private greeting: { resolve: (msg: Record<string, unknown>) => void; reject: (err: Error) => void } | undefined;
  private goneError: Error | undefined;
  private partial: Buffer[] = [];
  private connecting = true;
  private nextId = 1;
  private _version: QmpVersion = { qemu: { major: 0, minor: 0, micro: 0 }, package: '' };

  private constructor(
    private readonly socketPath: string,
    private readonly commandTimeoutMs: number,
  ) {
    this.closed = new Promise<Error>((resolve) => {
      this.resolveClosed = resolve;
    });
    // usocket emits 'close' only after a local end(); a peer EOF surfaces as 'end', a failed
    // connect or read as 'error' (then 'close'), and a failed write only through its callback.
    this.sock.on('error', (err: Error) => {
      this.connecting = false;
      this.finish(`QMP socket error: ${err.message}`, err);
    });
    this.sock.on('close', () => this.finish('QMP socket closed'));
    this.sock.on('end', () => this.finish('QEMU closed the QMP connection'));
    this.sock.once('connected', () => {
      this.connecting = false;
      if (this.goneError) return this.destroySocket();
      if (this.sock.fd !== undefined) trackInheritable(this.sock.fd);
      // Only now: usocket starts reading when asked after 'connected'; a 'data' listener attached
      // earlier asks too soon and the stream never flows.
      this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
    });
  }

  get version(): QmpVersion {
    return this._version;
  }
  get isClosed(): boolean {
    return this.goneError !== undefined;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: QmpExecuteOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.goneError) return reject(this.goneFor(command));
      const fds = opts.fds ?? [];
      // A bad descriptor makes sendmsg fail, and usocket then tears down the whole connection.
      const bad = fds.find((fd) => !isOpenFd(fd));
      if (bad !== undefined) {
        return reject(vmError(ErrorType.OperationInvalid, `cannot pass fd ${bad} with QMP ${command}: not an open descriptor`, { command, fd: bad }));
      }
      const id = `vmferry-${this.nextId++}`;
      const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
      const timer = setTimeout(() => {
        this.pending.delete(id); // a late reply to this id is then dropped
        reject(vmError(ErrorType.QmpTimeout, `QMP ${command} got no reply within ${timeoutMs} ms`, { command, timeoutMs }));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      const msg = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
      const data = Buffer.from(JSON.stringify(msg) + '\n');
      this.sock.write(fds.length > 0 ? { data, fds } : { data }, (err) => {
        if (err) this.finish(`writing to the QMP socket failed: ${err.message}`, err);
      });
    });
  }

  hmp(commandLine: string, opts: { timeoutMs?: number } = {}): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine }, opts);
  }

  onEvent(listener: (ev: QmpEvent) => void): () => void {
    const entry = (ev: QmpEvent): void => listener(ev); // a fresh entry, so subscribing twice is two listeners
    if (!this.goneError) this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  waitForEvent(name: string, opts: QmpWaitOptions = {}): Promise<QmpEvent> {
    const { timeoutMs, predicate, signal } = opts;
    return new Promise<QmpEvent>((resolve, reject) => {
      if (this.goneError) return reject(this.goneFor(`waiting for event ${name}`));
      if (signal?.aborted) return reject(aborted(name));
      let timer: NodeJS.Timeout | undefined;
      const settle = (fn: () => void): void => {
        unsubscribe();
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.goneHooks.delete(onGone);
        fn();
      };
      const onAbort = (): void => settle(() => reject(aborted(name)));
      const onGone = (): void => settle(() => reject(this.goneFor(`waiting for event ${name}`)));
      const unsubscribe = this.onEvent((ev) => {
        if (ev.event !== name) return;
        try {
          if (predicate && !predicate(ev)) return;
        } catch (err) {
          return settle(() => reject(err instanceof Error ? err : new Error(String(err))));
        }
        settle(() => resolve(ev));
      });
      this.goneHooks.add(onGone);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => settle(() => reject(vmError(ErrorType.QmpTimeout, `QMP event ${name} did not arrive within ${timeoutMs} ms`, { event: name, timeoutMs }))),
          timeoutMs,
        );
      }
    });
  }

  async close(): Promise<void> {
    this.finish('QMP connection closed locally');
    await new Promise<void>((resolve) => setImmediate(resolve)); // after destroySocket's turn
  }

  private async handshake(timeoutMs: number): Promise<void> {
    const greeting = await new Promise<Record<string, unknown>>((resolve, reject) => {
      this.greeting = { resolve, reject };
      this.sock.connect(this.socketPath);
      keepNativeHandleUntilClosed(this.sock);
    });
    const version = parseVersion(greeting);
    if (!version) throw vmError(ErrorType.QmpError, `unexpected QMP greeting on ${this.socketPath}`, { greeting });
    this._version = version;
    await this.execute('qmp_capabilities', undefined, { timeoutMs });
  }

  private onData(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1 && !this.goneError; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      const line = this.partial.length > 0 ? Buffer.concat([...this.partial, piece]) : piece;
      this.partial = [];
      start = nl + 1;
      this.onLine(line.toString('utf8'));
    }
    if (start < chunk.length && !this.goneError) this.partial.push(chunk.subarray(start));
  }

  private onLine(line: string): void {
    if (line.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      return; // QEMU writes one JSON object per line; a broken line cannot be matched to anything
    }
    if (typeof msg !== 'object' || msg === null) return;
    const m = msg as Record<string, unknown>;
    if ('QMP' in m) {
      const g = this.greeting;
      this.greeting = undefined;
      g?.resolve(m);
    } else if (typeof m.event === 'string') {
      for (const listener of [...this.listeners]) {
        try {
          listener(m as unknown as QmpEvent);
        } catch {
          // A listener's bug must not cost the other listeners their events or kill the connection.
        }
      }
    } else if (typeof m.id === 'string') {
      const p = this.pending.get(m.id);
      if (!p) return; // late reply to a command that already timed out
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if ('error' in m) {
        const e = (m.error ?? {}) as { class?: unknown; desc?: unknown };
        const cls = String(e.class),
          desc = String(e.desc);
        p.reject(vmError(ErrorType.QmpError, `QMP ${p.command} failed: ${cls}: ${desc}`, { command: p.command, class: cls, desc }));
      } else {
        p.resolve(m.return);
      }
    }
  }

  private finish(reason: string, cause?: Error): void {
    if (this.goneError) return;
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    const err = vmError(ErrorType.QemuGone, reason, { socketPath: this.socketPath, ...(code ? { code } : {}) });
    this.goneError = err;
    this.partial = [];
    this.destroySocket();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(this.goneFor(p.command));
    }
    this.greeting?.reject(err);
    this.greeting = undefined;
    for (const hook of [...this.goneHooks]) hook(err);
    this.goneHooks.clear();
    this.listeners.clear();
    this.resolveClosed(err);
  }

  private destroySocket(): void {
    // We get here from inside usocket's native callbacks; destroy() there would close the fd
    // and free the wrapper under its running read loop. A pending connect must finish first.
    setImmediate(() => {
      if (this.connecting) return;
      this.sock.destroy();
      if (this.sock.fd !== undefined) forgetInheritable(this.sock.fd);
    });
  }

  private goneFor(what: string): Error {
    const reason = this.goneError?.message ?? 'QMP connection closed';
    return vmError(ErrorType.QemuGone, `QMP ${what}: ${reason}`, { socketPath: this.socketPath, command: what });
  }
}

// usocket's close() starts libuv's asynchronous close of a poll handle that lives in
// its native wrapper, then drops the wrapper; if V8 collects it before libuv finishes,
// libuv touches freed memory and the worker aborts (seen after QEMU exits under load).
// Every path that closes (destroy, end of stream, error) goes through wrap.close, so
// the wrapper is held a while past it.
const closingWraps = new Set<object>();

function keepNativeHandleUntilClosed(sock: unknown): void {
  const wrap = (sock as { _wrap?: { close: () => void } })._wrap;
  if (!wrap) return;
  const close = wrap.close.bind(wrap);
  wrap.close = () => {
    closingWraps.add(wrap);
    setTimeout(() => closingWraps.delete(wrap), 2000).unref();
    close();
  };
}

function isOpenFd(fd: number): boolean {
  if (!Number.isInteger(fd) || fd < 0) return false;
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

function aborted(name: string): Error {
  return vmError(ErrorType.OperationAborted, `waiting for QMP event ${name} was aborted`, { event: name });
}

function parseVersion(greeting: Record<string, unknown>): QmpVersion | undefined {
  const v = (greeting.QMP as { version?: { qemu?: Record<string, unknown>; package?: unknown } } | undefined)?.version;
  const q = v?.qemu;
  if (!q || typeof q.major !== 'number' || typeof q.minor !== 'number' || typeof q.micro !== 'number') return undefined;
  return { qemu: { major: q.major, minor: q.minor, micro: q.micro }, package: typeof v.package === 'string' ? v.package : '' };
}
