// Every job is findable in the Web UI by these keys. The dev-server launcher
// registers exactly this list, so adding a key here is the only step needed.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const DomainName = defineSearchAttributeKey('DomainName', SearchAttributeType.KEYWORD);
export const DomainUuid = defineSearchAttributeKey('DomainUuid', SearchAttributeType.KEYWORD);
export const SourceHost = defineSearchAttributeKey('SourceHost', SearchAttributeType.KEYWORD);
export const DestinationHost = defineSearchAttributeKey('DestinationHost', SearchAttributeType.KEYWORD);
export const JobType = defineSearchAttributeKey('JobType', SearchAttributeType.KEYWORD);
export const JobPhase = defineSearchAttributeKey('JobPhase', SearchAttributeType.KEYWORD);

export const ALL_SEARCH_ATTRIBUTES = [DomainName, DomainUuid, SourceHost, DestinationHost, JobType, JobPhase];
