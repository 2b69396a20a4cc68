// Preloaded (node --import) into every workload and operator process a test starts: when the
// test process that started it dies without stopping it (a crashed vitest worker), the child is
// re-parented, and this stops it with SIGTERM — its own graceful shutdown — within a second or
// two, so no orphan holds ports, consumer groups or CPU for the tests that run after.
// LP_PARENT_PID names the parent (set by the spawner: a parent that died before this module
// loaded would otherwise go unnoticed); without it, the parent at load time.
import { clearInterval, setInterval } from "node:timers";

const parent = Number(process.env.LP_PARENT_PID) || process.ppid;
const timer = setInterval(() => {
  if (process.ppid !== parent) {
    clearInterval(timer);
    process.kill(process.pid, "SIGTERM");
  }
}, 1000);
timer.unref();
