import { foldCase } from '../contract/fold.js';
import type { Filter } from './filter.js';

/** The fields of an order a filter looks at. */
export interface Matchable {
  status: string;
  customer_name: string;
  product_name: string;
}

const foldedNames = new WeakMap<Matchable, [string, string]>();

/**
 * Whether an order is in the view: the one implementation of the rule, used by the stream (live,
 * catch-up from memory and from the log) and checked against the SQL of `GET /orders`
 * (test/filter/match.test.ts). The folded names of a row matched against many views are folded once
 * (cached by the row object's identity: rows are not changed in place).
 */
export function matches(f: Filter, row: Matchable): boolean {
  if (f.statuses !== null && !(f.statuses as readonly string[]).includes(row.status)) return false;
  if (f.terms.length === 0) return true;
  let folded = foldedNames.get(row);
  if (!folded) {
    folded = [foldCase(row.customer_name), foldCase(row.product_name)];
    foldedNames.set(row, folded);
  }
  const [customer, product] = folded;
  for (const t of f.terms) if (!customer.includes(t) && !product.includes(t)) return false;
  return true;
}
