// One per host, started by the host worker's first report (signal-with-start) and running
// for as long as the cluster does: keeps the last report and answers the `inventory` query.
// Each report replaces the last, so a run's history is only its signals; it continues as new
// with the last report before the history grows large.
import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { inventoryQuery, inventoryReportSignal, type InventoryView } from '../common/inventory-types.js';

/** Reports per run: bounded history (a report every 30 s is ~2 days a run). */
const REPORTS_PER_RUN = 5000;

export async function hostInventory(carried?: InventoryView): Promise<void> {
  let current = carried;
  let reports = 0;
  setHandler(inventoryReportSignal, (report) => {
    current = { ...report, receivedAtMs: Date.now() };
    reports++;
  });
  setHandler(inventoryQuery, () => current);
  await condition(() => reports >= REPORTS_PER_RUN || workflowInfo().continueAsNewSuggested);
  await condition(allHandlersFinished);
  await continueAsNew<typeof hostInventory>(current);
}
