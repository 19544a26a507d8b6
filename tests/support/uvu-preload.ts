/**
 * Preloaded by tests/run.ts into every test file's process
 * (`node --import tsx --import ./tests/support/uvu-preload.ts file`): a module
 * resolve hook sends the test file's `import ... from 'uvu'` to
 * ./uvu-suite.ts (hook errors printed, `.only`/`.skip` refused in CI). The
 * wrapper itself, and `uvu/assert`, resolve as usual.
 */
import { register } from 'node:module';

const wrapper = new URL('./uvu-suite.ts', import.meta.url).href;
const hooks = `
let wrapper;
export function initialize(data) { wrapper = data.wrapper; }
export async function resolve(specifier, context, next) {
  if (specifier === 'uvu' && context.parentURL !== wrapper) return next(wrapper, context);
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { wrapper } });
