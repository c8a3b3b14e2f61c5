// Reads from a host's inventory (common/inventory-types.ts): one query to the host's
// inventory workflow, no workflow started, so `list` and `dominfo` leave nothing in the
// Web UI and answer in one round trip. A host that never reported is unknown; one whose
// last report is older than three of its intervals is not reporting, and its last word
// is not passed off as the present.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { DomainInfo } from '../common/domain-types.js';
import { ErrorType, vmError } from '../common/errors.js';
import { HOST_NAME_PATTERN } from '../common/constants.js';
import { inventoryQuery, inventoryStaleAfterMs, inventoryWorkflowId, type InventoryView } from '../common/inventory-types.js';
import { UsageError } from './exit-codes.js';

export async function readInventory(client: Client, host: string | undefined): Promise<InventoryView> {
  if (!host) throw new UsageError('which host? give --host NAME or set VMFERRY_HOST');
  if (!HOST_NAME_PATTERN.test(host)) throw vmError(ErrorType.OperationInvalid, `bad host name ${JSON.stringify(host)}`);
  let view: InventoryView | undefined;
  try {
    view = await client.workflow.getHandle(inventoryWorkflowId(host)).query(inventoryQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw unknownHost(host);
    throw err;
  }
  if (!view) throw unknownHost(host);
  const ageMs = Date.now() - view.receivedAtMs;
  if (ageMs > inventoryStaleAfterMs(view.intervalMs)) {
    throw vmError(
      ErrorType.OperationFailed,
      `host '${host}' is not reporting: its worker's last report is ${Math.round(ageMs / 1000)} s old (it reports every ${view.intervalMs / 1000} s while it runs)`,
      { host, lastReportAtMs: view.receivedAtMs },
    );
  }
  return view;
}

function unknownHost(host: string): Error {
  return vmError(ErrorType.OperationInvalid, `unknown host '${host}': no host worker of that name has reported to this Temporal namespace`, { host });
}

/** The domain as the host last reported it; DomainNotFound as the host itself would say. */
export async function inventoryDomain(client: Client, host: string | undefined, name: string): Promise<DomainInfo> {
  const view = await readInventory(client, host);
  const d = view.domains.find((x) => x.name === name);
  if (!d) throw vmError(ErrorType.DomainNotFound, `no domain with name '${name}' on host ${view.host}`, { domain: name, host: view.host });
  return d;
}
