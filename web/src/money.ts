/**
 * Money on the dashboard, exact to the cent. An order's total_cents is at most 10^12, an exact JavaScript
 * number; sums of them (/orders/stats, the summary cards) can pass 2^53, where a number would round, so
 * sums are bigints. The server writes every digit of a sum as a JSON integer; parseStatsJson reads those
 * digits before JSON.parse can round them.
 */
export interface Stats {
  total_orders: number;
  /** Orders in the view asked for (status, q), same snapshot; absent from an older server or saved data. */
  view_orders?: number;
  total_cents: bigint;
  by_status: Record<string, { count: number; total_cents: bigint }>;
  per_minute: { minute: string; count: number }[];
}

let currency = 'USD';
let money = new Intl.NumberFormat(undefined, { style: 'currency', currency });

/**
 * The server's one currency (GET /me `currency`, its CURRENCY setting), set before the dashboard first
 * renders. The server accepts only currencies with two minor digits, which formatCents assumes.
 */
export function setCurrency(code: string): void {
  if (code === currency) return;
  try {
    money = new Intl.NumberFormat(undefined, { style: 'currency', currency: code });
    currency = code;
  } catch {
    // A code this browser does not know: keep the previous one rather than show no amounts at all.
  }
}

/** The ISO 4217 code amounts are shown in ("EUR"), for labels. */
export function currencyCode(): string {
  return currency;
}

/**
 * "$1,234.50" from 123450, computed in integers: the dollars are formatted as a bigint (grouping and
 * currency sign from the locale) and the two cent digits put in place of the fraction, so no division
 * in floating point ever drops or invents a cent.
 */
export function formatCents(cents: number | bigint): string {
  if (typeof cents === 'number' && !Number.isSafeInteger(cents)) return money.format(cents / 100);
  const value = BigInt(cents);
  const negative = value < 0n;
  const abs = negative ? -value : value;
  const fraction = String(abs % 100n).padStart(2, '0');
  const text = money
    .formatToParts(abs / 100n)
    .map((part) => (part.type === 'fraction' ? fraction : part.value))
    .join('');
  return negative ? `-${text}` : text;
}

/** JSON.parse, with every `"total_cents": <integer>` read as a bigint from its digits. */
export function parseStatsJson(text: string): Stats {
  const quoted = text.replace(/("total_cents"\s*:\s*)(-?\d+)/g, '$1"$2"');
  return JSON.parse(quoted, (key, value: unknown) => (key === 'total_cents' && typeof value === 'string' ? BigInt(value) : value)) as Stats;
}

/**
 * The `stats` of a `changes` message, with exact cents: it is the message's last field, and a quote
 * inside a name is always escaped, so `,"stats":{"by_status"` can only be the field itself.
 */
export function parseStatsDelta(
  messageText: string,
): { by_status: Record<string, { count: number; total_cents: bigint }>; per_minute: Record<string, number> } | null {
  const at = messageText.lastIndexOf(',"stats":{"by_status"');
  if (at === -1) return null;
  const text = messageText.slice(at + ',"stats":'.length, -1);
  const quoted = text.replace(/("total_cents"\s*:\s*)(-?\d+)/g, '$1"$2"');
  return JSON.parse(quoted, (key, value: unknown) => (key === 'total_cents' && typeof value === 'string' ? BigInt(value) : value));
}
