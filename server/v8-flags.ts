/**
 * spad's monitor and verifier run without V8's optimizing compiler (TurboFan): the monitor sets
 * the flag on itself as it starts (program.ts), the verifier gets it on its command line
 * (monitor-process.ts). The capture process keeps it.
 *
 * Why: a knock's work is mostly native (X25519, Ed25519, AES, SHA, syscalls) and many small
 * functions each called once or twice per knock. TurboFan compiles those one by one as they get
 * hot, on V8's worker threads, and with bursts of knocks that compiling went on for the first
 * two thousand or so: in `bench-knock`'s warm burst it was a third of spad's CPU (perf: 0.4-0.5 ms
 * per knock in each of the two processes, docs/benchmarks.md, issue #15), and what it bought back
 * per knock was smaller. Without it, code runs in V8's baseline tier (Sparkplug), still compiled,
 * never deoptimized. In process a valid knock's open() costs about 6% more once everything is
 * optimized, a refused one 10-20% more (bench-refused, 400 runs, with and without `--no-opt`).
 */
export const NO_OPTIMIZER = '--no-opt';
