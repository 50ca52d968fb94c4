/*
 * Backend for the proxy benchmark: a single-threaded epoll echo server.
 *
 * Usage: echo-server ADDRESS PORT
 *
 * It must cost as little CPU as possible, because the client, the backends and
 * the proxy under test share the same two cores: level-triggered epoll, one
 * read/write per readiness, no allocation on the common path (a buffer is kept
 * only for a connection whose peer did not take the whole echo).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536
#define BUF_SIZE 65536

struct pending {
  char *data;
  size_t len;
  size_t off;
};

static struct pending pend[MAX_FDS];
static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static void drop(int ep, int fd) {
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  free(pend[fd].data);
  pend[fd].data = NULL;
  pend[fd].len = pend[fd].off = 0;
  close(fd);
}

/* Keeps the unsent tail and stops reading until it drains: a peer that does not
 * read must slow the sender down, not grow the server's memory. */
static int flush_pending(int ep, int fd) {
  struct pending *p = &pend[fd];
  while (p->off < p->len) {
    ssize_t n = write(fd, p->data + p->off, p->len - p->off);
    if (n < 0) {
      if (errno == EAGAIN) return 0;
      return -1;
    }
    p->off += (size_t)n;
  }
  free(p->data);
  p->data = NULL;
  p->len = p->off = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
  return 1;
}

static void on_readable(int ep, int fd, char *buf) {
  ssize_t n = read(fd, buf, BUF_SIZE);
  if (n == 0 || (n < 0 && errno != EAGAIN)) {
    drop(ep, fd);
    return;
  }
  if (n < 0) return;
  ssize_t w = write(fd, buf, (size_t)n);
  if (w < 0 && errno != EAGAIN) {
    drop(ep, fd);
    return;
  }
  if (w < 0) w = 0;
  if (w < n) {
    size_t rest = (size_t)(n - w);
    pend[fd].data = malloc(rest);
    if (pend[fd].data == NULL) {
      drop(ep, fd);
      return;
    }
    memcpy(pend[fd].data, buf + w, rest);
    pend[fd].len = rest;
    pend[fd].off = 0;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]);
    return 2;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  /* Idle-connection runs hold thousands of flows on the backends too. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &sin.sin_addr) != 1) {
    fprintf(stderr, "echo-server: bad address %s\n", argv[1]);
    return 2;
  }
  if (bind(ls, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(ls, 4096) < 0) {
    fprintf(stderr, "echo-server: %s:%s: %s\n", argv[1], argv[2], strerror(errno));
    return 1;
  }

  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  static char buf[BUF_SIZE];
  struct epoll_event events[256];

  while (!stopping) {
    int n = epoll_wait(ep, events, 256, 1000);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        /* Bounded so that a connection storm cannot starve established flows. */
        for (int k = 0; k < 64; k++) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          if (c >= MAX_FDS) {
            close(c);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
      } else if (pend[fd].data != NULL) {
        if (flush_pending(ep, fd) < 0) drop(ep, fd);
      } else {
        on_readable(ep, fd, buf);
      }
    }
  }
  return 0;
}
