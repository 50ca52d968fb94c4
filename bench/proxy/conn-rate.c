/*
 * Connection-rate client: CONCURRENCY flows at a time, each one connect, send
 * one byte, read the echoed byte, close; a new flow starts as soon as one ends.
 *
 * Usage: conn-rate ADDRESS PORT CONCURRENCY SECONDS MAX_CONNECTIONS
 * Prints: connections=N errors=E seconds=S rate=R
 *
 * One byte each way makes the proxy do the whole life of a flow (accept, pick a
 * backend, connect, relay both ways, half-close, close) while keeping the bytes
 * negligible, so the figure is the cost of a flow and nothing else.
 *
 * Each slot binds its own source address in 127.0.1.0/24 (or the 250 addresses from
 * SOURCE_BASE on, e.g. in a network namespace) with the port chosen
 * at connect time: at 20k+ flows per second the client's TIME_WAIT entries
 * would otherwise exhaust the ephemeral ports of a single source address.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum state { CONNECTING, READING };

struct slot {
  int fd;
  enum state st;
  double started;
};

static struct sockaddr_in target;
/* First of 250 consecutive source addresses; 127.0.1.1 unless SOURCE_BASE is given. */
static uint32_t source_base = 0x7f000101u;
static int ep;
static long done_count, errors;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int start(struct slot *s, int idx) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  struct sockaddr_in src = {.sin_family = AF_INET};
  src.sin_addr.s_addr = htonl(source_base + (uint32_t)(idx % 250));
  if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) {
    close(fd);
    return -1;
  }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  s->fd = fd;
  s->st = CONNECTING;
  s->started = now();
  struct epoll_event ev = {.events = EPOLLOUT, .data.u32 = (uint32_t)idx};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

static void finish(struct slot *s, int ok) {
  epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
  close(s->fd);
  s->fd = -1;
  if (ok)
    done_count++;
  else
    errors++;
}

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: %s ADDRESS PORT CONCURRENCY SECONDS MAX_CONNECTIONS [SOURCE_BASE]\n", argv[0]);
    return 2;
  }
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &target.sin_addr) != 1) return 2;
  if (argc == 7) {
    struct in_addr base;
    if (inet_pton(AF_INET, argv[6], &base) != 1) return 2;
    source_base = ntohl(base.s_addr);
  }
  int conc = atoi(argv[3]);
  double seconds = atof(argv[4]);
  long max_conns = atol(argv[5]);
  if (conc < 1 || conc > 1024 || seconds <= 0 || max_conns < 1) return 2;

  ep = epoll_create1(0);
  struct slot *slots = calloc((size_t)conc, sizeof *slots);
  double t0 = now();
  double deadline = t0 + seconds;
  /* Bounded: past this many failures the path is broken and the figure would mean nothing. */
  long max_errors = 1000;

  for (int i = 0; i < conc; i++) {
    slots[i].fd = -1;
    if (start(&slots[i], i) < 0) errors++;
  }

  struct epoll_event events[1024];
  char byte = 'x';
  for (;;) {
    double t = now();
    if (t >= deadline || done_count >= max_conns || errors >= max_errors) break;
    int n = epoll_wait(ep, events, 1024, 100);
    for (int i = 0; i < n; i++) {
      int idx = (int)events[i].data.u32;
      struct slot *s = &slots[idx];
      if (s->fd < 0) continue;
      if (s->st == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0 || write(s->fd, &byte, 1) != 1) {
          finish(s, 0);
        } else {
          s->st = READING;
          struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)idx};
          epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
          continue;
        }
      } else {
        char b;
        ssize_t r = read(s->fd, &b, 1);
        if (r < 0 && errno == EAGAIN) continue;
        finish(s, r == 1);
      }
      if (now() < deadline && start(s, idx) < 0) errors++;
    }
    /* A flow stuck for 5 s (a lost SYN in an overflowing accept queue, say) is
     * counted as an error and replaced rather than left to hold its slot. */
    t = now();
    for (int i = 0; i < conc; i++) {
      if (slots[i].fd >= 0 && t - slots[i].started > 5.0) {
        finish(&slots[i], 0);
        if (t < deadline && start(&slots[i], i) < 0) errors++;
      }
    }
  }
  double elapsed = now() - t0;
  printf("connections=%ld errors=%ld seconds=%.3f rate=%.0f\n", done_count, errors, elapsed,
         (double)done_count / elapsed);
  return errors >= max_errors ? 1 : 0;
}
