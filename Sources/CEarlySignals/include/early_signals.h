// Stop requests that arrive before a training process has its handlers (early_signals.c).
#ifndef CONTROLNET_EARLY_SIGNALS_H
#define CONTROLNET_EARLY_SIGNALS_H

/// Stop signals counted by the early handler (or carried over an exec) so far.
int ces_early_requests(void);
/// Just before a re-exec: blocks the stop signals (they stay pending across execve) and passes on a counted
/// request in the environment.
void ces_hold_for_exec(void);
/// Unblocks the stop signals in the calling thread (after the handlers are installed, or when the exec failed).
void ces_unblock_stop_signals(void);

#endif
