// Preloaded (--require) into a server process by the memory benchmark, pinroom
// and baselines alike, started with --expose-gc:
// - SIGUSR2: a full garbage collection, then process.memoryUsage() written to
//   BENCH_MEMORY_FILE, so that memory per connection counts what is retained,
//   not garbage not yet collected;
// - SIGWINCH, when BENCH_HEAP_SNAPSHOT names a file: a full GC and a heap
//   snapshot there (for finding what a connection retains; not used by the run).
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
    if (typeof global.gc === 'function') global.gc();
    require('node:v8').writeHeapSnapshot(process.env.BENCH_HEAP_SNAPSHOT);
  });
}
