// A host's inventory: what its worker last reported of itself and its domains, kept by one
// long-running workflow per host so reads (`vmferry list`, `dominfo`, the job verbs' name
// lookup) are a query, not a workflow each. Shared by the host worker (sender), the
// inventory workflow (keeper) and the CLI (reader).
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { DomainInfo, HostInfo } from './domain-types.js';

export interface HostInventory {
  host: string;
  hostInfo: HostInfo;
  /** Every domain the host knows (defined or running), as `dominfo` shows it. */
  domains: DomainInfo[];
  /** The host worker's clock when it made this report. */
  reportedAtMs: number;
  /** The worker reports at least this often while it runs: a report older than a few of these means it is not running. */
  intervalMs: number;
  workerPid: number;
}

export interface InventoryView extends HostInventory {
  /** The inventory workflow's clock when the report arrived. */
  receivedAtMs: number;
}

export const INVENTORY_WORKFLOW_TYPE = 'hostInventory';

export function inventoryWorkflowId(host: string): string {
  return `vmferry-host-${host}`;
}

export const inventoryReportSignal = defineSignal<[HostInventory]>('inventoryReport');
/** Undefined until the first report (a workflow started by hand, say). */
export const inventoryQuery = defineQuery<InventoryView | undefined>('inventory');

/** How old a report may be before readers say the host is not reporting: three missed reports and a margin. */
export function inventoryStaleAfterMs(intervalMs: number): number {
  return 3 * intervalMs + 5000;
}
