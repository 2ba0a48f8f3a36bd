/* Preloaded under valgrind 3.19 only (bench/profile.sh): libdispatch's main thread waits in
 * sigsuspend with a signal mask in read-only memory, and valgrind's rt_sigsuspend wrapper edits
 * the mask in place, which kills valgrind itself. This sigsuspend passes a writable copy. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

int sigsuspend(const sigset_t *mask) {
    sigset_t copy = *mask;
    return (int)syscall(SYS_rt_sigsuspend, &copy, _NSIG / 8);
}
