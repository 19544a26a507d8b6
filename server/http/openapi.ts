/**
 * The HTTP API's OpenAPI document, `GET /openapi.json` (docs/operations.md).
 *
 * Routes declare their request schemas (`schema.body`, `schema.params`,
 * `schema.querystring`) as the shared zod schemas; Fastify validates requests
 * with them through `zodValidatorCompiler` and @fastify/swagger turns the same
 * schemas into the document (fastify-type-provider-zod's transforms). A route
 * with `schema.hide` (the demo's static files, CORS preflight) is left out.
 */
import { fastifySwagger } from '@fastify/swagger';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { HttpRoutes } from '../../shared/routes.ts';
import { AppError } from '../errors.ts';
import { parse } from '../validation.ts';

/** Security schemes that routes name in `schema.security`. */
export const Security = {
  /** `Authorization: Bearer <access token>` (or `<METRICS_TOKEN>` for /metrics). */
  bearer: [{ bearer: [] }],
  /** The service API key in `x-api-key` (`FEED_API_KEY`). */
  apiKey: [{ apiKey: [] }],
} as const;

/**
 * Validate a request part with its zod schema, failing exactly like the
 * shared `parse()`: `bad_request` with `Invalid <what>: <first issue>`. A body
 * is named by its schema's description (`request body` without one); a path
 * or query parameter is checked one by one and named by its own description.
 */
const zodValidatorCompiler: FastifySchemaCompiler<z.ZodType> = ({ schema, httpPart }) => {
  const perField = (httpPart === 'params' || httpPart === 'querystring') && schema instanceof z.ZodObject;
  return (value: unknown) => {
    try {
      if (!perField) return { value: parse(schema, value ?? undefined, schema.description ?? 'request body') };
      const shape = (schema as z.ZodObject).shape as Record<string, z.ZodType>;
      const input = (value ?? {}) as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const [key, field] of Object.entries(shape)) {
        const parsed = parse(field, input[key], field.description ?? key);
        if (parsed !== undefined) out[key] = parsed;
      }
      return { value: out };
    } catch (err) {
      if (err instanceof AppError) return { error: err };
      throw err;
    }
  };
};

/**
 * Set up zod validation and the document on a new Fastify instance, before
 * any route is declared. The routes of createApp are declared synchronously,
 * before Fastify loads registered plugins, and @fastify/swagger collects
 * routes with an onRoute hook; so its setup function runs on the root
 * instance now, as `register` would run it (a fastify-plugin: no
 * encapsulation), rather than waiting for `register`.
 */
export function setUpOpenApi(app: FastifyInstance, { version }: { version: string }): void {
  app.setValidatorCompiler(zodValidatorCompiler);
  fastifySwagger(
    app,
    {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'pinroom HTTP API',
          version,
          description:
            'Sign-in, PIN look-up, service publishing and operator routes of pinroom. Real-time traffic (rooms, presence, feeds) goes over Socket.IO at /socket.io/, described in docs/protocol.md. Errors answer `{ error: { code, message, retryable? } }`.',
        },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'An access token (admin routes) or METRICS_TOKEN (/metrics).' },
            apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'The service API key (FEED_API_KEY).' },
          },
        },
      },
      transform: jsonSchemaTransform,
      transformObject: jsonSchemaTransformObject,
    },
    (err?: Error) => {
      if (err) throw err;
    },
  );
  app.get(HttpRoutes.openapi, { schema: { summary: 'This OpenAPI document', tags: ['meta'] } }, async (_request, reply) => {
    return reply.header('cache-control', 'no-cache').send(app.swagger());
  });
}
