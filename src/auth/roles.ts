import type { Filter } from '../filter/filter.js';

/** Who may do what: each role can do everything the roles before it can. */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

export function allows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

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
