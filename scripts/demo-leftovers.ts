// What a crashed demo (killed with SIGKILL, say) leaves that would spoil the next run: its
// Temporal dev server, still holding the demo's port; its workers, which outlive their parent
// and reconnect to the next run's server, where they would take tasks from the new workers'
// queues; and its workflows, still running in the server's database (a save or migrate job of
// the old guest would resume and act on the new guest of the same name). QEMU guests are not
// here: the new workers find them through their state directories and the demo destroys them.
// The demo records its server's and workers' PIDs in its state directory; the next run stops
// each one that is still what was recorded (a PID can be reused): a dev server on this state
// directory's database, or a vmferry worker talking to this demo's Temporal address. Then it
// terminates every workflow still running in its own dev server before its workers start.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client } from '@temporalio/client';

function procText(pid: number, what: 'cmdline' | 'environ'): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/${what}`, 'utf8').split('\0').join('\n');
  } catch {
    return undefined;
  }
}

/** Is `pid` still the demo's own server or worker? */
function stillOurs(pid: number, dbFilename: string, address: string): boolean {
  const cmd = procText(pid, 'cmdline');
  if (cmd === undefined) return false;
  if (cmd.includes('start-dev')) return cmd.includes(dbFilename);
  return /workers\/(host|control)\.(ts|js)\b/.test(cmd) && (procText(pid, 'environ') ?? '').split('\n').includes(`TEMPORAL_ADDRESS=${address}`);
}

/** Stops what a crashed run recorded in `pidFile` (by PID, after checking what each is). */
export async function stopLeftovers(pidFile: string, dbFilename: string, address: string, log: (line: string) => void): Promise<void> {
  let pids: number[];
  try {
    pids = readFileSync(pidFile, 'utf8')
      .split('\n')
      .map(Number)
      .filter((p) => Number.isInteger(p) && p > 1);
  } catch {
    return;
  }
  const ours = pids.filter((p) => stillOurs(p, dbFilename, address));
  if (ours.length > 0) log(`stopping what an earlier run left: pids ${ours.join(', ')}`);
  for (const pid of ours) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (ours.some((p) => procText(p, 'cmdline') !== undefined) && Date.now() < deadline) await delay(100);
  for (const pid of ours) if (stillOurs(pid, dbFilename, address)) process.kill(pid, 'SIGKILL');
  rmSync(pidFile, { force: true });
}

/** Records the processes a run started, so that the next run can stop them if this one crashes. */
export function recordPids(pidFile: string, pids: number[]): void {
  writeFileSync(pidFile, pids.map((p) => `${p}\n`).join(''));
}

/** Terminates the workflows an earlier run left running (the demo's own dev server holds nothing else). */
export async function terminateLeftoverWorkflows(client: Client, log: (line: string) => void): Promise<void> {
  for await (const wf of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
    log(`terminating ${wf.type} workflow ${wf.workflowId}, left running by an earlier run`);
    await client.workflow.getHandle(wf.workflowId, wf.runId).terminate('left running by an earlier demo run');
  }
}
