/* The "floor" supervisor of bench/bench.py: the least a process manager can do to restart a
 * killed child, so its "SIGKILL -> new pid" row is the physical floor of that measurement on the
 * machine (kernel exit + wake-up of a parent blocked in waitpid + vfork + execv).
 *
 *     PYPM_BENCH_FLOOR_MARK=0.123 floor /usr/bin/sleep
 *
 * runs `sleep 100000 MARK` forever: blocking waitpid, then vfork + execv again, no delay. The
 * marker comes from the environment so that the supervisor's own cmdline does not carry it.
 * SIGTERM / SIGINT / SIGHUP kill the current child and end the supervisor. A child that cannot
 * exec (exit status 127) ends it too, rather than spinning.
 *
 * Built by bench.py with `cc -O2 -o bench/.scratch/floor bench/floor.c`.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile pid_t child = 0;

static void on_term(int sig) {
  (void)sig;
  if (child > 0) kill(child, SIGKILL);
  _exit(0);
}

int main(int argc, char **argv) {
  const char *mark = getenv("PYPM_BENCH_FLOOR_MARK");
  if (argc != 2 || mark == NULL || *mark == '\0') {
    fprintf(stderr, "usage: PYPM_BENCH_FLOOR_MARK=0.N %s /path/to/sleep\n", argv[0]);
    return 2;
  }
  char *args[] = {"sleep", "100000", (char *)mark, NULL};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  for (;;) {
    pid_t p = vfork();
    if (p < 0) {
      perror("vfork");
      return 1;
    }
    if (p == 0) {
      execv(argv[1], args);
      _exit(127);
    }
    child = p;
    int st;
    while (waitpid(p, &st, 0) < 0) {
      /* EINTR only: the handlers end the process, so just wait again. */
    }
    child = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
      fprintf(stderr, "floor: cannot exec %s\n", argv[1]);
      return 1;
    }
  }
}
