/**
 * `GET /openapi.json`: a valid OpenAPI 3 document that lists every HTTP route
 * the server registers, with the request schemas the routes validate with;
 * and validation through those schemas fails as the handlers' own checks did
 * (`bad_request`, `Invalid <what>: ...`), after the feed route's key check.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { App } from '../../server/app.ts';
import { createApp } from '../../server/app.ts';
import { createTestContext, type TestContext } from '../support/context.ts';

const test = suite('http/openapi');
const API_KEY = 'openapi-test-key-0123456789abcdef';
let ctx: TestContext;
let app: App;
let url: string;

test.before(async () => {
  ctx = createTestContext({ FEED_API_KEY: API_KEY });
  app = createApp(ctx.config);
  ({ url } = await app.start());
});
test.after(async () => {
  await app?.stop();
  await ctx.cleanup();
});

interface Operation {
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
  parameters?: { in: string; name: string; required?: boolean; schema: Record<string, unknown> }[];
  security?: unknown[];
}
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

async function getDocument(): Promise<Document> {
  const res = await fetch(`${url}/openapi.json`);
  assert.is(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', 'application/json');
  return (await res.json()) as Document;
}

test('the document validates against the OpenAPI 3 schema', async () => {
  const document = await getDocument();
  assert.match(document.openapi, /^3\./);
  const result = await new Validator().validate(document as unknown as Record<string, unknown>);
  assert.ok(result.valid, JSON.stringify(result.errors, null, 2));
});

test('the document lists every route the server registered, and nothing else', async () => {
  const document = await getDocument();
  // Fastify adds a HEAD route for each GET; hidden routes are the demo's static files and CORS preflight.
  const registered = app.http
    .registeredRoutes()
    .filter((r) => !r.hidden && r.method !== 'HEAD')
    .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`)
    .sort();
  const documented = Object.entries(document.paths)
    .flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`))
    .sort();
  assert.equal(documented, registered);
  for (const route of ['POST /auth/register', 'GET /rooms/pin/{pin}', 'POST /api/rooms/{roomId}/events', 'GET /metrics', 'GET /openapi.json']) {
    assert.ok(registered.includes(route), `${route} is registered (and so documented)`);
  }
  const hidden = app.http.registeredRoutes().filter((r) => r.hidden);
  assert.ok(hidden.every((r) => r.method === 'OPTIONS' || r.method === 'GET' || r.method === 'HEAD'), 'only static files and preflight are hidden');
});

test('request schemas in the document are the ones the routes validate with', async () => {
  const document = await getDocument();
  const register = document.paths['/auth/register']!.post!.requestBody!.content['application/json']!.schema;
  assert.equal(register.required, ['username', 'password']);
  assert.is(register.additionalProperties, false);
  const pin = document.paths['/rooms/pin/{pin}']!.get!.parameters!.find((p) => p.name === 'pin')!;
  assert.is(pin.in, 'path');
  assert.type(pin.schema.pattern, 'string');
  assert.ok(new RegExp(pin.schema.pattern as string).test('123456') && !new RegExp(pin.schema.pattern as string).test('12a456'));
  assert.equal(document.paths['/api/rooms/{roomId}/events']!.post!.security, [{ apiKey: [] }]);

  // What the document says is refused, the route refuses.
  const extra = await fetch(`${url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'someone', password: 'long enough pw', admin: true }) });
  assert.is(extra.status, 400);
  const badPin = await fetch(`${url}/rooms/pin/12a456`);
  assert.is(badPin.status, 400);
});

test('a request that fails its schema is bad_request naming the part, as the handlers said before', async () => {
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const guest = await post('/auth/guest', { displayName: '' });
  assert.is(guest.status, 400);
  const guestError = ((await guest.json()) as { error: { code: string; message: string } }).error;
  assert.is(guestError.code, 'bad_request');
  assert.match(guestError.message, /^Invalid request body: displayName: /);

  const pin = (await (await fetch(`${url}/rooms/pin/12a456`)).json()) as { error: { code: string; message: string } };
  assert.equal([pin.error.code, pin.error.message.split(':')[0]], ['bad_request', 'Invalid PIN']);

  const roomId = '00000000-0000-4000-8000-000000000000';
  // Without the key, a bad body is still 401: the key is checked first.
  const noKey = await post(`/api/rooms/${roomId}/events`, { nonsense: true });
  assert.is(noKey.status, 401);
  const badRoom = (await (await post('/api/rooms/not-a-uuid/events', { nonsense: true }, { 'x-api-key': API_KEY })).json()) as { error: { message: string } };
  assert.match(badRoom.error.message, /^Invalid room id: /);
  const badEvent = (await (await post(`/api/rooms/${roomId}/events`, { nonsense: true }, { 'x-api-key': API_KEY })).json()) as { error: { message: string } };
  assert.match(badEvent.error.message, /^Invalid event: /);
});

test.run();
