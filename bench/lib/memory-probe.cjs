// Preloaded (--require) into a server process by the memory benchmark, pinroom
// and baselines alike, started with --expose-gc:
// - SIGUSR2: a full garbage collection and, 200 ms later, its
//   process.memoryUsage() kept as `afterFullGc`; then a memory-reducing GC and
//   process.memoryUsage() written to BENCH_MEMORY_FILE with `afterFullGc`
//   added, so that memory per connection counts what is retained, neither
//   garbage not yet collected nor free heap pages V8 still holds;
// - SIGWINCH, when BENCH_HEAP_SNAPSHOT names a file: a full GC and a heap
//   snapshot there (for finding what a connection retains; not used by the run).
//
// Why the memory-reducing GC: since V8 13 (Node 24), heap pages freed by a GC
// go to a page pool and stay resident until a memory-reducing GC (V8's
// MemoryReducer, memory pressure, a last-resort GC) or the isolate's end; an
// ordinary full GC keeps them. On Node 24 the MemoryReducer does not start in
// a process that never allocates on the embedder (cppgc) heap: its allocation
// rate reads 0, taken as high (`--trace-memory-reducer` logs `high alloc` on
// every tick), so only its 100 s watchdog would, and every full GC, ours
// included, restarts that clock. RSS after an ordinary full GC is then the
// heap's high-water mark during the load (the garbage it made at its peak),
// not what the connections retain. V8 11 (Node 20) gives freed pages back in
// a background task right after any GC (hence the 200 ms), so both readings
// agree there. 'last-resort' is the flavor of `gc()` that reduces memory
// (V8's CollectAllAvailableGarbage).
'use strict';
const { writeFileSync } = require('node:fs');
process.on('SIGUSR2', () => {
  if (typeof global.gc !== 'function') {
    writeFileSync(process.env.BENCH_MEMORY_FILE, JSON.stringify(process.memoryUsage()));
    return;
  }
  global.gc();
  global.gc();
  setTimeout(() => {
    const afterFullGc = process.memoryUsage();
    global.gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    writeFileSync(process.env.BENCH_MEMORY_FILE, JSON.stringify({ ...process.memoryUsage(), afterFullGc }));
  }, 200);
});
if (process.env.BENCH_HEAP_SNAPSHOT) {
  process.on('SIGWINCH', () => {
    if (typeof global.gc === 'function') global.gc();
    require('node:v8').writeHeapSnapshot(process.env.BENCH_HEAP_SNAPSHOT);
  });
}
