/*
 * Request/response latency over one connection: write SIZE bytes, wait until
 * all SIZE come back, repeat. One request in flight at a time, so each sample
 * is a full round trip through the proxy and nothing queues behind it.
 *
 * Usage: ping-pong ADDRESS PORT ITERATIONS SIZE MAX_SECONDS
 * Prints: samples=N p50_us=.. p99_us=.. p999_us=.. max_us=..
 *
 * The first 10% of the iterations (at least 100) warm up the path (JIT, caches,
 * socket buffers) and are not recorded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

static double pct(const long long *v, long n, double p) {
  long i = (long)(p * (double)(n - 1) + 0.5);
  if (i >= n) i = n - 1;
  return (double)v[i] / 1000.0;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s ADDRESS PORT ITERATIONS SIZE MAX_SECONDS\n", argv[0]);
    return 2;
  }
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) return 2;
  long iters = atol(argv[3]);
  int size = atoi(argv[4]);
  double max_seconds = atof(argv[5]);
  if (iters < 1 || size < 1 || size > 65536 || max_seconds <= 0) return 2;
  long warm = iters / 10 > 100 ? iters / 10 : 100;

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  /* A lost response must end the run, not hang it. */
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    fprintf(stderr, "ping-pong: connect %s:%s: %s\n", argv[1], argv[2], strerror(errno));
    return 1;
  }

  char *out = malloc((size_t)size), *in = malloc((size_t)size);
  memset(out, 'p', (size_t)size);
  long long *samples = malloc(sizeof(long long) * (size_t)iters);
  long n = 0;
  long long deadline = now_ns() + (long long)(max_seconds * 1e9);

  for (long i = 0; i < warm + iters; i++) {
    long long t0 = now_ns();
    if (t0 > deadline) break;
    if (write(fd, out, (size_t)size) != size) {
      fprintf(stderr, "ping-pong: write: %s\n", strerror(errno));
      return 1;
    }
    int got = 0;
    while (got < size) {
      ssize_t r = read(fd, in + got, (size_t)(size - got));
      if (r <= 0) {
        fprintf(stderr, "ping-pong: read: %s\n", r == 0 ? "connection closed" : strerror(errno));
        return 1;
      }
      got += (int)r;
    }
    if (i >= warm) samples[n++] = now_ns() - t0;
  }
  close(fd);
  if (n == 0) {
    fprintf(stderr, "ping-pong: no samples within %.0f s\n", max_seconds);
    return 1;
  }
  qsort(samples, (size_t)n, sizeof *samples, cmp_ll);
  printf("samples=%ld p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f\n", n, pct(samples, n, 0.50),
         pct(samples, n, 0.99), pct(samples, n, 0.999), (double)samples[n - 1] / 1000.0);
  return 0;
}
