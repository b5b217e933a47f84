import { formatCents, formatCount, STATUS_LABEL } from './format.ts';
import type { HistoryEntry } from './history-api.ts';

/** How the timeline and the Activity panel say who, when and what. */

/** "packing station 3 (operator)", or "database user importer, app nightly-import". */
export function actorLabel(actor: HistoryEntry['actor']): string {
  if (actor.kind === 'token') return `${actor.name} (${actor.role})`;
  return `database user ${actor.user}${actor.application ? `, app ${actor.application}` : ''}`;
}

const FIELD_LABEL: Record<string, string> = {
  customer_name: 'Customer',
  product_name: 'Product',
  quantity: 'Qty',
  total_cents: 'Total',
  notes: 'Notes',
  status: 'Status',
};

const FIELD_ORDER = Object.keys(FIELD_LABEL);

export function fieldLabel(field: string): string {
  return FIELD_LABEL[field] ?? field;
}

/** A field's value as the table shows it. */
export function fieldValue(field: string, value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (field === 'total_cents' && typeof value === 'number') return formatCents(value);
  if (field === 'quantity' && typeof value === 'number') return formatCount(value);
  if (field === 'status' && typeof value === 'string') return STATUS_LABEL[value] ?? value;
  if (typeof value === 'string') return value === '' ? '(empty)' : value;
  return JSON.stringify(value);
}

/** The changed fields in the table's column order: [field, old, new]. */
export function changedFields(entry: HistoryEntry): [string, unknown, unknown][] {
  const fields = Object.keys(entry.changes).sort((a, b) => {
    const i = FIELD_ORDER.indexOf(a);
    const j = FIELD_ORDER.indexOf(b);
    return (i < 0 ? 99 : i) - (j < 0 ? 99 : j);
  });
  return fields.map((f) => {
    const [before, after] = entry.changes[f] ?? [null, null];
    return [f, before, after];
  });
}

/** One line for the Activity panel, like the stream's ("pending → shipped", "created (pending)"). */
export function summarizeEntry(entry: HistoryEntry): string {
  if (entry.op === 'insert') return `created (${String(entry.changes.status?.[1] ?? 'pending')})`;
  if (entry.op === 'delete') return 'deleted';
  const status = entry.changes.status;
  if (status) return `${String(status[0])} → ${String(status[1])}`;
  const fields = Object.keys(entry.changes);
  return fields.length ? `edited ${fields.map((f) => f.replace('_name', '').replace('total_cents', 'total')).join(', ')}` : 'updated';
}

const exact = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

/** The exact local time, and the same instant in UTC (for the hover title). */
export function exactTimes(iso: string): { local: string; utc: string } {
  const d = new Date(iso);
  // The server writes microseconds; keep the milliseconds in the UTC form, which is what logs show.
  return { local: exact.format(d), utc: `${d.toISOString().replace('T', ' ').replace('Z', '')} UTC` };
}
