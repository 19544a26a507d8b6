import type { z } from 'zod';
import { AppError, ErrorCode } from './errors.ts';

/** Validate `value` against a shared schema, or throw `bad_request` naming what was wrong. */
export function parse<S extends z.ZodType>(schema: S, value: unknown, what = 'payload'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.slice(0, 10).map((issue) => {
    const path = issue.path.map(String).join('.');
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  throw new AppError(ErrorCode.BadRequest, `Invalid ${what}: ${issues[0] ?? 'malformed'}`, { issues });
}
