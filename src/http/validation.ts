import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type ValueError, ValueErrorType } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';
import type { FieldError } from '../errors.js';

/**
 * Request validation from the same TypeBox schemas that type the handlers and describe the API.
 * Bodies are checked strictly (a string is not a number, unknown fields are refused); query strings,
 * params and headers arrive as text, so they are converted and given their defaults first.
 */
export interface FieldValidationError extends FieldError {
  instancePath: string;
}

function describe(error: ValueError): string {
  const schema = error.schema as {
    anyOf?: { const?: unknown }[];
    minLength?: number;
    maxLength?: number;
    minimum?: number;
    maximum?: number;
    description?: string;
  };
  if (schema.anyOf?.every((s) => s.const !== undefined)) {
    return `must be one of ${schema.anyOf.map((s) => s.const).join(', ')}`;
  }
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return 'is not a known field';
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
    case ValueErrorType.StringMinLength:
      return schema.minLength === 1 ? 'must not be empty' : `must be at least ${schema.minLength} characters`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${schema.maxLength} characters`;
    case ValueErrorType.IntegerMinimum:
    case ValueErrorType.NumberMinimum:
      return `must be at least ${schema.minimum}`;
    case ValueErrorType.IntegerMaximum:
    case ValueErrorType.NumberMaximum:
      return `must be at most ${schema.maximum}`;
    case ValueErrorType.Integer:
      return 'must be a whole number';
    case ValueErrorType.String:
      return 'must be a string';
    case ValueErrorType.Object:
      return 'must be a JSON object';
    case ValueErrorType.ObjectMinProperties:
      return 'must contain at least one field';
    case ValueErrorType.StringPattern:
      return schema.description ? `is not valid: ${schema.description}` : 'has an invalid format';
    default:
      return error.message.replace(/^Expected/, 'must be');
  }
}

function fieldName(path: string, httpPart: string): string {
  const field = path.replace(/^\//, '').replace(/\//g, '.') || '(whole)';
  return httpPart === 'body' ? field : `${httpPart === 'querystring' ? 'query' : httpPart}.${field}`;
}

/**
 * TypeBox's conversion turns "1.5" into 1 for an integer; for ids and limits that would be a silent
 * misreading, so integer fields convert only from whole-number text and are otherwise left to fail.
 */
function convert(schema: TSchema, input: unknown): unknown {
  const properties = (schema as { properties?: Record<string, { type?: string }> }).properties;
  if (!properties || !input || typeof input !== 'object') return Value.Convert(schema, input);
  const strictInput: Record<string, unknown> = { ...(input as Record<string, unknown>) };
  const held: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(properties)) {
    const v = strictInput[key];
    if (prop.type === 'integer' && typeof v === 'string' && !/^-?\d{1,16}$/.test(v)) {
      held[key] = v;
      delete strictInput[key];
    }
  }
  return { ...(Value.Convert(schema, strictInput) as object), ...held };
}

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema);
  const part = httpPart ?? 'body';
  return (input: unknown) => {
    const value = part === 'body' ? input : Value.Default(schema, convert(schema, input));
    if (check.Check(value)) return { value };
    const seen = new Set<string>();
    const errors: FieldValidationError[] = [];
    for (const error of check.Errors(value)) {
      // The first error for a path is the most specific; unions report one per member otherwise.
      const atOrBelow = [...seen].some((p) => error.path.startsWith(`${p}/`));
      if (seen.has(error.path) || atOrBelow) continue;
      seen.add(error.path);
      errors.push({ field: fieldName(error.path, part), message: describe(error), instancePath: error.path });
      if (errors.length >= 20) break;
    }
    return { error: errors as unknown as Error };
  };
};
