/* c_epoll.c: a minimal single-threaded epoll echo-mode peer.
 *
 * Why it exists: it is the "practical limit" line in the results, and the
 * proof that the load generator is not the bottleneck (run.py requires the
 * load generator to drive this peer at least 2x faster than the fastest
 * Python server).
 *
 * It is an honest peer, not a byte echoer: every say payload is validated
 * as JSON (jsonscan.h), its members are checked, and a new echo frame is
 * written, with n/of frames for repeat > 1.  Shortcut, on purpose: the echo
 * copies the text member's raw JSON bytes from the say instead of decoding
 * and re-encoding it.  For the load generator's texts (ASCII letters, no
 * escapes) that gives exactly what json.dumps(ensure_ascii=False) gives;
 * a text sent with \u escapes would come back with the same escapes.
 *
 *   c_epoll --port 0 [--interface 127.0.0.1] [--spin]
 *
 * --spin busy-polls instead of sleeping in epoll_wait.  That is no way to
 * run a server, but it takes the kernel's wake-up latency out of a
 * ping-pong, so run.py uses it (as "c_epoll_spin") to measure how fast the
 * load generator itself can go when the server side costs almost nothing.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../jsonscan.h"

#define MAX_MESSAGE 65536

struct conn {
    int fd;
    int closing;                 /* close once the output is written */
    unsigned char *rbuf, *wbuf;
    size_t rlen, rcap, wlen, woff, wcap;
    int epout;
};

static int ep;

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) { perror("realloc"); exit(1); }
    return p;
}

static unsigned char *reserve(struct conn *c, size_t n)
{
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    if (c->wlen + n > c->wcap) {
        if (c->woff) {
            memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
            c->wlen -= c->woff;
            c->woff = 0;
        }
        if (c->wlen + n > c->wcap) {
            c->wcap = (c->wlen + n) * 2;
            c->wbuf = xrealloc(c->wbuf, c->wcap);
        }
    }
    unsigned char *p = c->wbuf + c->wlen;
    c->wlen += n;
    return p;
}

static void put_frame(struct conn *c, const char *parts[], const size_t lens[], int k)
{
    size_t n = 0;
    for (int i = 0; i < k; i++) n += lens[i];
    unsigned char *p = reserve(c, 4 + n);
    uint32_t be = htonl((uint32_t)n);
    memcpy(p, &be, 4);
    p += 4;
    for (int i = 0; i < k; i++) { memcpy(p, parts[i], lens[i]); p += lens[i]; }
}

static void put_str(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    put_frame(c, &s, &n, 1);
}

static void put_error(struct conn *c, const char *code, const char *text)
{
    char buf[256];
    snprintf(buf, sizeof buf, "{\"type\":\"error\",\"code\":\"%s\",\"text\":\"%s\"}",
             code, text);
    put_str(c, buf);
}

static void conn_free(struct conn *c)
{
    close(c->fd);
    free(c->rbuf);
    free(c->wbuf);
    free(c);
}

/* Returns -1 when the connection was freed. */
static int flush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (w > 0) { c->woff += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            if (!c->epout) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->epout = 1;
            }
            return 0;
        }
        conn_free(c);
        return -1;
    }
    c->woff = c->wlen = 0;
    if (c->closing) { conn_free(c); return -1; }
    if (c->epout) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->epout = 0;
    }
    return 0;
}

/* Answers one payload, following the contract's echo mode. */
static void handle(struct conn *c, const char *p, size_t n)
{
    static const char *const keys[] = {"type", "text", "repeat"};
    jval v[3];
    if (n == 0 || json_object_get(p, n, keys, 3, v) < 0 || v[0].kind != 's') {
        put_error(c, "bad_message", "not a JSON object with a string type");
        return;
    }
    if (json_str_eq(&v[0], "say")) {
        long repeat = 1;
        if (v[1].kind != 's' || (v[2].kind && !(v[2].kind == 'n' && v[2].integer))) {
            put_error(c, "bad_message", "say needs a string text and an integer repeat");
            return;
        }
        if (v[2].kind) {
            char num[24];
            if (v[2].n >= sizeof num) repeat = 0;
            else { memcpy(num, v[2].p, v[2].n); num[v[2].n] = 0; repeat = strtol(num, NULL, 10); }
            if (repeat < 1 || repeat > 100) {
                put_error(c, "bad_value", "repeat must be 1..100");
                return;
            }
        }
        static const char head[] = "{\"type\":\"echo\",\"text\":\"";
        if (repeat == 1) {
            const char *parts[] = {head, v[1].p, "\"}"};
            size_t lens[] = {sizeof head - 1, v[1].n, 2};
            put_frame(c, parts, lens, 3);
            return;
        }
        for (long i = 1; i <= repeat; i++) {
            char tail[48];
            int tl = snprintf(tail, sizeof tail, "\",\"n\":%ld,\"of\":%ld}", i, repeat);
            const char *parts[] = {head, v[1].p, tail};
            size_t lens[] = {sizeof head - 1, v[1].n, (size_t)tl};
            put_frame(c, parts, lens, 3);
        }
    } else if (json_str_eq(&v[0], "quit")) {
        put_str(c, "{\"type\":\"bye\",\"text\":\"bye\"}");
        c->closing = 1;
    } else if (json_str_eq(&v[0], "answer") || json_str_eq(&v[0], "token") ||
               json_str_eq(&v[0], "logout")) {
        put_error(c, "bad_state", "not in echo mode");
    } else {
        put_error(c, "bad_message", "unknown type");
    }
}

#define READ_MAX (256 * 1024)

static void on_read(struct conn *c)
{
    if (c->rlen == c->rcap) {
        c->rcap *= 2;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    size_t room = c->rcap - c->rlen;
    ssize_t r = read(c->fd, c->rbuf + c->rlen, room);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) { conn_free(c); return; }
    c->rlen += (size_t)r;
    size_t off = 0;
    while (!c->closing && c->rlen - off >= 4) {
        uint32_t len;
        memcpy(&len, c->rbuf + off, 4);
        len = ntohl(len);
        if (len > MAX_MESSAGE) {
            put_error(c, "too_large", "frame over max_message");
            c->closing = 1;
            break;
        }
        if (c->rlen - off < 4 + (size_t)len) {
            if (4 + (size_t)len > c->rcap) {
                c->rcap = 4 + (size_t)len;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            break;
        }
        handle(c, (const char *)c->rbuf + off + 4, len);
        off += 4 + (size_t)len;
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if ((size_t)r == room && c->rcap < READ_MAX) {
        /* a busy connection: read more of what is waiting per call */
        c->rcap *= 2;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    flush(c);
}

int main(int argc, char **argv)
{
    const char *iface = "127.0.0.1";
    int port = 0, spin = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--spin")) spin = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--port")) port = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--interface")) iface = argv[++i];
        else {
            fprintf(stderr, "usage: c_epoll [--port P] [--interface ADDR] [--spin]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, iface, &sa.sin_addr) != 1) { fprintf(stderr, "bad --interface\n"); return 2; }
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 1024) < 0) {
        perror("bind/listen");
        return 1;
    }
    socklen_t sl = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    printf("listening on %s:%d\n", iface, ntohs(sa.sin_port));
    fflush(stdout);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
    static const char welcome[] =
        "{\"type\":\"welcome\",\"server\":\"echolab\",\"version\":\"0\","
        "\"mode\":\"echo\",\"max_message\":65536}";
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, spin ? 0 : -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    c->rcap = 4096;
                    c->rbuf = xrealloc(NULL, c->rcap);
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                    put_str(c, welcome);
                    flush(c);
                }
                continue;
            }
            if (evs[i].events & EPOLLIN) on_read(c);
            else if (evs[i].events & EPOLLOUT) flush(c);
            else conn_free(c);
        }
    }
}
