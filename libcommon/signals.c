#include <signal.h>
#include <string.h>

#include "signals.h"

static volatile sig_atomic_t stop_signal;

static void remember_stop(int signal_number)
{
	stop_signal = signal_number;
}

void signals_install(void)
{
	struct sigaction action;

	memset(&action, 0, sizeof(action));
	action.sa_handler = remember_stop;
	sigemptyset(&action.sa_mask);
	sigaction(SIGINT, &action, NULL);
	sigaction(SIGTERM, &action, NULL);
	/* A closed stdout must be a write error we handle, not sudden death mid-item. */
	action.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &action, NULL);
}

bool signals_stop_requested(void)
{
	return stop_signal != 0;
}

int signals_received(void)
{
	return stop_signal;
}

void signals_block_stop(sigset_t *wait_mask)
{
	sigset_t stop_signals;

	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop_signals, wait_mask);
	/* The wait must see a stop even if we were started with them blocked. */
	sigdelset(wait_mask, SIGINT);
	sigdelset(wait_mask, SIGTERM);
}
