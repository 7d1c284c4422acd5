/* Time for timeouts and deadlines: the monotonic clock, which wall-clock steps do not move. */
#ifndef CERTCTL_DEADLINE_H
#define CERTCTL_DEADLINE_H

/* Milliseconds on CLOCK_MONOTONIC: compare and subtract them, never print them. */
long long monotonic_milliseconds(void);

#endif
