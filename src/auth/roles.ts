import type { Role } from '../contract/roles.js';
import type { Filter } from '../filter/filter.js';

/** Route-level requirement, in Fastify route `config.auth`. Routes without one need admin. */
export type AuthRequirement = Role | 'public';

export interface Principal {
  /** Stable id of the credential: `db:<id>` or `env:<n>`, or `local` when authentication is off. */
  id: string;
  name: string;
  role: Role;
  /** The orders this credential may see and leave orders in (a scoped token); absent: all of them. */
  scope?: Filter;
}
