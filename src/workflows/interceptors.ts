// Carries the requested-by header from the workflow's start to each activity it
// schedules, so the host that changes a VM can say who asked.
import type { WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { REQUESTED_BY_HEADER } from '../common/requested-by.js';
import type { Payload } from '@temporalio/common';

export const interceptors: WorkflowInterceptorsFactory = () => {
  let requestedBy: Payload | undefined;
  return {
    inbound: [
      {
        async execute(input, next) {
          requestedBy = input.headers[REQUESTED_BY_HEADER];
          return await next(input);
        },
      },
    ],
    outbound: [
      {
        async scheduleActivity(input, next) {
          return await next(requestedBy ? { ...input, headers: { ...input.headers, [REQUESTED_BY_HEADER]: requestedBy } } : input);
        },
      },
    ],
  };
};
