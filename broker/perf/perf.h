/*
 * perf.h - `magnetar perf produce|consume`: a load generator and latency meter in the
 * manner of pulsar-perf, built on the client module.
 */
#ifndef MG_PERF_H
#define MG_PERF_H

/* Run the perf command. argv[0] is "perf", argv[1] the mode ("produce" or "consume"),
 * the rest its options and topics. Runs its own event loop until done, Ctrl-C, or an
 * error; returns the process exit code: 0 on success (also after SIGINT, which prints the
 * summary first), 1 when the broker cannot be reached or a producer/consumer cannot be
 * created, 2 on bad usage (one line on stderr). */
int perf_main(int argc, char **argv);

#endif
