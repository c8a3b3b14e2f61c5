// A host worker that dies during a test makes every later step on its host wait
// for a task nobody polls. This turns that into an immediate, named failure, and
// restarts dead workers for the cleanup (their QEMUs outlive them and must go).
import type { TestCluster } from './cluster.js';

export class WorkerWatch {
  private stopping = false;
  readonly died = new Map<string, number | null>();
  /** Rejects as soon as a watched host worker exits while the tests run. */
  readonly death: Promise<never>;

  constructor(
    private readonly cluster: TestCluster,
    hosts: string[],
  ) {
    this.death = new Promise<never>((_, reject) => {
      for (const name of hosts) {
        void this.cluster.hosts.get(name)?.worker?.exited.then((code) => {
          if (this.stopping) return;
          this.died.set(name, code);
          reject(new Error(`host worker ${name} exited (code ${code}) during the test`));
        });
      }
    });
    this.death.catch(() => undefined);
  }

  async race<T>(p: Promise<T>): Promise<T> {
    return await Promise.race([p, this.death]);
  }

  /** For afterAll: restart what died (it reattaches to its QEMUs), then stop watching. */
  async reviveForCleanup(): Promise<void> {
    this.stopping = true;
    for (const name of this.died.keys()) await this.cluster.startHost(name);
  }
}
