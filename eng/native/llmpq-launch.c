/*
 * llmpq-launch PARENT_PID PROGRAM [ARGUMENT...]
 *
 * Runs PROGRAM (a path, or a name looked up in PATH) so that it dies with the LlmPq process that started it, even
 * when that process is killed with SIGKILL: .NET cannot set a child's parent-death signal, so this launcher sets it and
 * then becomes the program (exec keeps the pid and the signal setting). PARENT_PID closes the race of a parent that
 * died before the setting took effect: the launcher then has another parent and never starts the program.
 *
 * The kernel sends the signal when the *thread* that forked the launcher exits, so the parent must fork from a thread
 * that lives as long as the child should (LlmPq uses one dedicated spawning thread).
 *
 * The program also gets a process group of its own, so a Ctrl+C in the terminal reaches LlmPq, which then stops its
 * children in order, rather than every child at once.
 *
 * Exit status 127 and a line on standard error when the launcher itself fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: llmpq-launch PARENT_PID PROGRAM [ARGUMENT...]\n");
        return 127;
    }

    char *end = NULL;
    errno = 0;
    long parent = strtol(argv[1], &end, 10);
    if (errno != 0 || end == argv[1] || *end != '\0' || parent <= 1) {
        fprintf(stderr, "llmpq-launch: '%s' is not a parent process id\n", argv[1]);
        return 127;
    }

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        fprintf(stderr, "llmpq-launch: prctl(PR_SET_PDEATHSIG): %s\n", strerror(errno));
        return 127;
    }

    if (getppid() != (pid_t)parent) {
        fprintf(stderr, "llmpq-launch: parent %ld is gone; not starting %s\n", parent, argv[2]);
        return 127;
    }

    if (setpgid(0, 0) != 0) {
        fprintf(stderr, "llmpq-launch: setpgid: %s\n", strerror(errno));
        return 127;
    }

    execvp(argv[2], argv + 2);
    fprintf(stderr, "llmpq-launch: cannot run %s: %s\n", argv[2], strerror(errno));
    return 127;
}
