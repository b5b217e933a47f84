/**
 * A typed amount, read the way the page's locale writes numbers: "149,00" in German is 149.00, "1.234,50"
 * is 1234.50; "149.00" and "1,234.50" in English. What the locale would not write is refused with a message
 * that shows the amount as the locale writes it, never guessed: "149,00" in English could be a European
 * 149.00 or a mistyped 14,900, and reading it either way silently is what made totals 100× too large.
 *
 * Rules: an optional currency sign or code around the number (ignored), digits, at most one decimal
 * separator (the locale's) followed by one or two digits, and group separators only between groups of
 * three digits before it. Whole amounts ("149") are fine everywhere. The result is in cents, computed
 * from the digits (no floating point).
 */
export type MoneyParse = { ok: true; cents: number } | { ok: false; message: string };

interface Separators {
  decimal: string;
  group: string;
}

function separators(locale?: string): Separators {
  const parts = new Intl.NumberFormat(locale, { useGrouping: true }).formatToParts(12345.6);
  return {
    decimal: parts.find((p) => p.type === 'decimal')?.value ?? '.',
    group: parts.find((p) => p.type === 'group')?.value ?? ',',
  };
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** Spaces of every kind (French and Swiss locales group with narrow no-break spaces). */
const SPACES = /[\s\u00a0\u202f]/g;
const MAX_CENTS = 1_000_000_000_000;

/** An example of `cents` as the locale writes an amount in the form: 149,00 / 149.00. */
export function formatMoneyInput(cents: number, locale?: string): string {
  const { decimal } = separators(locale);
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}${decimal}${String(abs % 100).padStart(2, '0')}`;
}

export function parseMoneyInput(text: string, locale?: string): MoneyParse {
  const { decimal, group } = separators(locale);
  const example = `for example ${formatMoneyInput(14900, locale)}`;
  const groupIsSpace = group.replace(SPACES, '') === '';
  // Currency signs and codes around the number carry no amount.
  let s = text.trim().replace(/^[^\d\-.,]+|[^\d.,]+$/g, '');
  if (groupIsSpace) s = s.replace(SPACES, '');
  const negative = s.startsWith('-');
  if (negative) s = s.slice(1);
  const allowed = new RegExp(`^(\\d|${escapeRegExp(decimal)}|${escapeRegExp(group)})+$`);
  if (!allowed.test(s)) return { ok: false, message: `must be an amount, ${example}` };
  const lastDecimal = s.lastIndexOf(decimal);
  const whole = lastDecimal === -1 ? s : s.slice(0, lastDecimal);
  const fraction = lastDecimal === -1 ? '' : s.slice(lastDecimal + decimal.length);
  if (lastDecimal !== -1 && !/^\d{1,2}$/.test(fraction)) {
    return { ok: false, message: /^\d+$/.test(fraction) ? `has at most two digits after "${decimal}"` : `must be an amount, ${example}` };
  }
  const valid = groupIsSpace ? /^\d+$/ : new RegExp(`^(\\d+|\\d{1,3}(${escapeRegExp(group)}\\d{3})+)$`);
  if (!valid.test(whole)) return { ok: false, message: `must be written with "${decimal}" before the cents, ${example}` };
  const digits = groupIsSpace ? whole : whole.split(group).join('');
  const cents = Number(digits) * 100 + Number(fraction.padEnd(2, '0'));
  if (!Number.isSafeInteger(cents) || cents > MAX_CENTS) return { ok: false, message: 'is too large' };
  return { ok: true, cents: negative ? -cents : cents };
}
