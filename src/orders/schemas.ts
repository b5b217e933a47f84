import { type Static, Type } from '@sinclair/typebox';
import type { Order } from '../contract/protocol.js';
import { SORT_KEYS } from '../contract/sort-order.js';
import { ORDER_STATUSES } from '../contract/statuses.js';

/**
 * The API's request and response shapes: one source for validation (Fastify/Ajv), TypeScript types and
 * the OpenAPI description. Limits mirror the CHECK constraints in migrations/0001_orders.sql and 0005.
 */

const OrderStatusSchema = Type.Union(
  ORDER_STATUSES.map((s) => Type.Literal(s)),
  { description: 'Lifecycle: pending → processing | shipped | cancelled; processing → shipped | cancelled; shipped → delivered.' },
);

/**
 * A name needs one character a person can see: whitespace, zero-width and other format characters,
 * and the Hangul and Braille blanks alone would make an order that nobody can find or tell apart.
 */
const VISIBLE = '[^\\s\\u00AD\\u034F\\u115F\\u1160\\u180E\\u200B-\\u200F\\u202A-\\u202E\\u2060-\\u206F\\u2800\\u3164\\uFEFF\\uFFA0]';
const Name = (description: string) =>
  Type.String({
    minLength: 1,
    maxLength: 200,
    pattern: VISIBLE,
    description: `${description}: 1–200 characters after trimming, at least one of them visible`,
  });
const Quantity = Type.Integer({ minimum: 1, maximum: 100_000, description: 'Units ordered (1–100000).' });
/**
 * The money ceiling: 10^12 cents ($10 billion) per order, on create, PATCH and PUT alike, and a CHECK
 * constraint for every other writer (migrations/0005). Far below 2^53, so an order's total is always an
 * exact JSON number; sums of it (/orders/stats) are numeric in SQL and rendered digit for digit.
 */
const MAX_TOTAL_CENTS = 1_000_000_000_000;
const TotalCents = Type.Integer({
  minimum: 0,
  maximum: MAX_TOTAL_CENTS,
  description: 'Order total in cents, 0–1000000000000 ($10 billion).',
});
const Notes = Type.String({ maxLength: 10_000, description: 'Free text, up to 10,000 characters.' });

export const OrderSchema = Type.Object(
  {
    id: Type.Integer({ minimum: 1 }),
    customer_name: Type.String(),
    product_name: Type.String(),
    quantity: Type.Integer(),
    total_cents: Type.Integer({ minimum: 0, maximum: MAX_TOTAL_CENTS }),
    notes: Type.String(),
    status: OrderStatusSchema,
    version: Type.Integer({ minimum: 1, description: 'Starts at 1, +1 on every update (by any writer); also the ETag.' }),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Order' },
);
// One Order: the contract's (src/contract/protocol.ts), which the dashboard and the stream use. This
// schema describes it for validation and OpenAPI; if either changes without the other, this line stops
// compiling.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _orderSchemaIsTheContract: Same<Static<typeof OrderSchema>, Order> = true;

export const OrderCreateSchema = Type.Object(
  {
    customer_name: Name('Customer name'),
    product_name: Name('Product name'),
    quantity: Type.Optional(Quantity),
    total_cents: Type.Optional(TotalCents),
    notes: Type.Optional(Notes),
    status: Type.Optional(OrderStatusSchema),
  },
  { additionalProperties: false },
);
export type OrderCreate = Static<typeof OrderCreateSchema>;

export const OrderUpdateSchema = Type.Object(
  {
    customer_name: Type.Optional(Name('Customer name')),
    product_name: Type.Optional(Name('Product name')),
    quantity: Type.Optional(Quantity),
    total_cents: Type.Optional(TotalCents),
    notes: Type.Optional(Notes),
    status: Type.Optional(OrderStatusSchema),
    reason: Type.Optional(
      Type.String({ maxLength: 500, description: 'Why (e.g. why it is cancelled): not a field of the order, kept in its history.' }),
    ),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type OrderUpdate = Omit<Static<typeof OrderUpdateSchema>, 'reason'>;

export const WRITABLE_FIELDS = ['customer_name', 'product_name', 'quantity', 'total_cents', 'notes', 'status'] as const;

export const IdParamsSchema = Type.Object(
  { id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'Order id.' }) },
  { additionalProperties: false },
);

export const ListQuerySchema = Type.Object(
  {
    status: Type.Optional(
      Type.String({
        pattern: `^(${ORDER_STATUSES.join('|')})(,(${ORDER_STATUSES.join('|')}))*$`,
        description: 'One status or several, comma-separated.',
      }),
    ),
    q: Type.Optional(Type.String({ maxLength: 200, description: 'Case-insensitive substring of customer or product name.' })),
    limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
    sort: Type.Optional(
      Type.Union(
        SORT_KEYS.map((k) => Type.Literal(k)),
        { description: 'The column to sort by (default id); ties are broken by id in the same direction.' },
      ),
    ),
    dir: Type.Optional(
      Type.Union([Type.Literal('asc'), Type.Literal('desc')], {
        description: 'Sort direction; default: asc for names and status (lifecycle order), desc for numbers and times.',
      }),
    ),
    page: Type.Optional(
      Type.String({ maxLength: 1200, description: 'The opaque token of the next page, from the `Link: rel="next"` header.' }),
    ),
    before: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'Orders with a smaller id (the default sort only; kept for older clients, `page` supersedes it).',
      }),
    ),
  },
  { additionalProperties: false },
);

/** GET /orders/stats: the view whose `view_orders` to count. */
export const StatsQuerySchema = Type.Object(
  { status: ListQuerySchema.properties.status, q: ListQuerySchema.properties.q },
  { additionalProperties: false },
);

/** GET /orders.csv: the view and its order, as on GET /orders. */
export const ExportQuerySchema = Type.Object(
  {
    status: ListQuerySchema.properties.status,
    q: ListQuerySchema.properties.q,
    sort: ListQuerySchema.properties.sort,
    dir: ListQuerySchema.properties.dir,
  },
  { additionalProperties: false },
);
export type ExportQuery = Static<typeof ExportQuerySchema>;
export type ListQuery = Static<typeof ListQuerySchema>;

export const IdempotencyKeyHeaderSchema = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' })),
  'if-match': Type.Optional(Type.String({ maxLength: 1000 })),
});

const SumOfCents = Type.Integer({
  minimum: 0,
  description:
    'An exact sum of total_cents, written as a JSON integer with every digit. It can exceed 2^53 (about 9 × 10^15): clients that need exactness there must parse it as a big number.',
});

export const StatsSchema = Type.Object({
  total_orders: Type.Integer(),
  view_orders: Type.Integer({ description: 'Orders matching `status` and `q` (all of the scope without them), in the same snapshot.' }),
  total_cents: SumOfCents,
  by_status: Type.Record(Type.String(), Type.Object({ count: Type.Integer(), total_cents: SumOfCents })),
  per_minute: Type.Array(Type.Object({ minute: Type.String({ format: 'date-time' }), count: Type.Integer() }), {
    description: 'Orders created per minute over the last 60 minutes, oldest first.',
  }),
});
export type Stats = Static<typeof StatsSchema>;
