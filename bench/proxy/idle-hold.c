/*
 * Opens COUNT connections, proves each one reaches a backend with a one-byte
 * echo, then holds them all idle until SIGTERM or MAX_SECONDS.
 *
 * Usage: idle-hold ADDRESS PORT COUNT MAX_SECONDS
 * Prints "held=N" once all are open (or "failed=..." and exits 1).
 *
 * The echo matters: a proxy that accepts but has not yet connected upstream
 * holds half a flow, and its memory per flow would be understated.
 * Sources rotate over 127.0.2.0/24 so that several runs in a row never wait
 * for ports still in TIME_WAIT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s ADDRESS PORT COUNT MAX_SECONDS\n", argv[0]);
    return 2;
  }
  struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) return 2;
  long count = atol(argv[3]);
  int max_seconds = atoi(argv[4]);
  if (count < 1 || count > 19000 || max_seconds < 1) return 2;

  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  /* The whole run, opening included, is bounded. */
  alarm((unsigned)max_seconds);

  int *fds = malloc(sizeof(int) * (size_t)count);
  struct timeval tv = {.tv_sec = 5};
  int one = 1;
  for (long i = 0; i < count && !stopping; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      printf("failed=socket opened=%ld error=%s\n", i, strerror(errno));
      return 1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7f000200u + (uint32_t)(i % 250) + 1u);
    char b = 'i';
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0 ||
        connect(fd, (struct sockaddr *)&target, sizeof target) < 0 || write(fd, &b, 1) != 1 ||
        read(fd, &b, 1) != 1) {
      printf("failed=flow opened=%ld error=%s\n", i, strerror(errno));
      return 1;
    }
    fds[i] = fd;
  }
  if (stopping) {
    printf("failed=timeout\n");
    return 1;
  }
  printf("held=%ld\n", count);
  fflush(stdout);
  while (!stopping) pause();
  return 0;
}
