import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createApp, type App } from '../../server/app.ts';
import { loadConfig } from '../../server/config.ts';
import { HttpRoutes, pinLookupPath, roomEventsPath } from '../../shared/routes.ts';

const test = suite('shared/routes');
let app: App;

test.before(() => {
  // Nothing connects before start(): the routes are registered by createApp alone.
  app = createApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', FEED_API_KEY: 'a-service-key-for-routes', KEY_PREFIX: 'pinroom:routes-test:' }));
});

test.after(async () => {
  await app.stop();
});

test('the server registers every HTTP route the shared contract names', () => {
  for (const [name, url] of Object.entries(HttpRoutes)) {
    assert.ok(['GET', 'POST'].some((method) => app.http.hasRoute({ method, url })), `${name} (${url}) is not registered`);
  }
});

test('path builders fill in and encode their parameters', () => {
  assert.is(pinLookupPath('123456'), '/rooms/pin/123456');
  assert.is(roomEventsPath('a/b c'), '/api/rooms/a%2Fb%20c/events');
});

test.run();
