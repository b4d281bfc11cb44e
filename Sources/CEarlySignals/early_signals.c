// A training process takes its stop signals (SIGTERM, SIGINT, SIGUSR1) as stop requests from its first constructor
// on, not only once `main` has installed the trainer's handlers: a scheduler's TERM right after launch must not
// kill a rank while it is still loading, and must not be lost. Until then this early handler counts them
// (process-wide, so OpenBLAS's worker threads are covered too); StopSignals.install takes the count over.
// OpenBLAS's re-exec with OPENBLAS_CORETYPE (BLASRuntime) would reset the handlers: just before it, the signals are
// blocked (the mask and pending signals survive execve, and the new image's threads inherit the mask) and a
// request already counted travels in CONTROLNET_STOP_PENDING. Only argv[1] "train-base" and "train-controlnet"
// are affected: every other command keeps the default actions.
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "early_signals.h"

static atomic_int early_requests;

static void early_handler(int sig) {
    (void)sig;
    atomic_fetch_add(&early_requests, 1);
}

// glibc passes (argc, argv, envp) to constructors.
__attribute__((constructor(101))) static void take_stop_signals_early(int argc, char **argv, char **envp) {
    (void)envp;
    if (argc < 2 || argv == NULL || argv[1] == NULL) return;
    if (strcmp(argv[1], "train-base") != 0 && strcmp(argv[1], "train-controlnet") != 0) return;
    if (getenv("CONTROLNET_STOP_PENDING") != NULL) {
        atomic_store(&early_requests, 1);
        unsetenv("CONTROLNET_STOP_PENDING");
    }
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = early_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGUSR1, &action, NULL);
}

int ces_early_requests(void) { return atomic_load(&early_requests); }

static void stop_signals(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
}

void ces_hold_for_exec(void) {
    sigset_t set;
    stop_signals(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (atomic_load(&early_requests) > 0) setenv("CONTROLNET_STOP_PENDING", "1", 1);
}

void ces_unblock_stop_signals(void) {
    sigset_t set;
    stop_signals(&set);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    unsetenv("CONTROLNET_STOP_PENDING");
}
