// Preloaded (--require) into a server process by the memory benchmark, pinroom
// and baselines alike, started with --expose-gc: on SIGUSR2 it runs a full
// garbage collection and writes process.memoryUsage() to BENCH_MEMORY_FILE, so
// that memory per connection counts what is retained, not garbage not yet collected.
'use strict';
const { writeFileSync } = require('node:fs');
process.on('SIGUSR2', () => {
  if (typeof global.gc === 'function') {
    global.gc();
    global.gc();
  }
  writeFileSync(process.env.BENCH_MEMORY_FILE, JSON.stringify(process.memoryUsage()));
});
if (process.env.BENCH_HEAP_SNAPSHOT) {
  process.on('SIGWINCH', () => {
    global.gc?.();
    require('node:v8').writeHeapSnapshot(process.env.BENCH_HEAP_SNAPSHOT);
  });
}
