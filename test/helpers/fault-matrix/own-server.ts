// A Temporal dev server owned by one test file, on a fixed port chosen free at
// start, so the file can stop it and start it again on the same SQLite file and
// address: the workers it started reconnect to the same place. A cluster on it
// is the ordinary TestCluster pointed at this address instead of the shared one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevServer, type DevServer } from '../../../src/local/dev-server.js';
import { freePort } from '../../../src/local/free-port.js';
import { findTemporalCli } from '../../../src/local/temporal-cli.js';
import { TestCluster } from '../cluster.js';

export class OwnServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'vmf-fm-temporal-'));
  private server?: DevServer;
  private port = 0;
  restarts = 0;

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.server?.pid;
  }

  async start(): Promise<void> {
    const cli = findTemporalCli();
    if (!cli) throw new Error('no temporal CLI: run `npm run setup` first');
    if (this.port === 0) this.port = await freePort();
    this.server = await startDevServer({ cliPath: cli, stateDir: this.dir, port: this.port, headless: true });
  }

  /** Stops the server (SIGTERM, as an operator or supervisor would) and starts it again on the same database and port. */
  async restart(): Promise<void> {
    await this.server?.stop();
    await this.start();
    this.restarts++;
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    this.server = undefined;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The test cluster, on a server this file owns. */
export class OwnServerCluster extends TestCluster {
  override readonly address: string;

  constructor(address: string) {
    super();
    this.address = address;
  }
}
