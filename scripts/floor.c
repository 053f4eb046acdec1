/* The kernel's floor on this machine: a C server with the worker's shape and no HTTP
 * parsing at all, for scripts/floor.py --c.
 *
 * Two processes share one listener (EPOLLEXCLUSIVE, TCP_DEFER_ACCEPT, TCP_NODELAY, as
 * pyfork's master sets them); each reads right after accept, answers every complete
 * request head ("\r\n\r\n") with one fixed response in one send, and closes when the
 * request said "Connection: close". Whatever a server spends per request above this is
 * user space; this much is accept4 + recvfrom + sendto (+ close) + epoll on loopback.
 *
 *     cc -O2 -o floor scripts/floor.c && ./floor PORT     (prints nothing; TERM stops it)
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char KEEP[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
                           "Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: floor\r\n\r\nHello, World!";
static const char CLOSE[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
                            "Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: floor\r\nConnection: close\r\n\r\n"
                            "Hello, World!";

/* Read what is there and answer each complete head. 0: keep the connection, -1: closed. */
static int answer(int fd) {
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 0)
        return 0;                 /* nothing yet (EAGAIN) */
    if (n == 0) {
        close(fd);
        return -1;
    }
    buf[n] = 0;
    char out[8 * sizeof CLOSE];
    size_t len = 0;
    int closing = 0;
    for (char *p = buf, *end; !closing && len + sizeof CLOSE < sizeof out && (end = strstr(p, "\r\n\r\n")); p = end + 4) {
        *end = 0;
        closing = strcasestr(p, "\nConnection: close") != NULL;
        const char *r = closing ? CLOSE : KEEP;
        size_t rn = closing ? sizeof CLOSE - 1 : sizeof KEEP - 1;
        memcpy(out + len, r, rn);
        len += rn;
    }
    if (len)
        send(fd, out, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (closing) {
        close(fd);
        return -1;
    }
    return 0;
}

static void serve(int lfd) {
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(ep, events, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd != lfd) {
                answer(fd);       /* a closed fd leaves the epoll set by itself */
                continue;
            }
            for (int k = 0; k < 8; k++) {
                int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c < 0)
                    break;
                if (answer(c) == 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: floor PORT\n");
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &one, sizeof one);
    setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 1024)) {
        perror("floor: bind/listen");
        return 1;
    }
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            signal(SIGTERM, SIG_DFL);
            serve(lfd);
        }
    }
    /* the parent only waits: TERM it and it takes the children along */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sig;
    sigwait(&set, &sig);
    for (int i = 0; i < 2; i++)
        kill(kids[i], SIGTERM);
    for (int i = 0; i < 2; i++)
        waitpid(kids[i], NULL, 0);
    return 0;
}
