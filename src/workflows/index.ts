export { domainOperation } from './domain-operation.js';
