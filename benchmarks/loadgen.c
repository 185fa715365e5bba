/* loadgen.c: single-threaded epoll load generator for the echolab protocol.
 *
 * Why C and one thread: the load generator must never be what limits a
 * measurement.  run.py checks that by driving peers/c_epoll.c with it and
 * requiring at least twice the rate of the fastest Python server.
 *
 * Every frame is 4-byte big-endian length + UTF-8 JSON object.  Replies are
 * parsed (jsonscan.h), not byte-compared, because peers may space and order
 * their JSON differently.
 *
 * Modes (one JSON result line on stdout; diagnostics on stderr):
 *   pipeline    C connections x D requests in flight, text of S letters;
 *               every echo is checked against the text that was sent.
 *   idle        open N connections, read each welcome, print a "ready"
 *               line, hold them until stdin closes (run.py reads RSS then).
 *   latency     one connection, open-loop pings at a fixed rate, RTT
 *               percentiles in microseconds (optionally after a token login,
 *               for auth-mode servers).
 *   register / pwlogin / tokenlogin
 *               auth-mode flows, one connection per flow, K flows in flight,
 *               closed loop or at a fixed start rate.
 * Exit status: 0 ok, 1 a reply was wrong or a flow broke, 2 usage/setup.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "jsonscan.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { M_PIPELINE, M_IDLE, M_LATENCY, M_REGISTER, M_PWLOGIN, M_TOKENLOGIN };
static const char *const MODE_NAMES[] = {"pipeline", "idle", "latency",
                                         "register", "pwlogin", "tokenlogin"};

/* Connection states.  Flow steps name the frame we wait for next. */
enum state {
    ST_FREE, ST_CONNECTING, ST_WELCOME, ST_ASK_LOGIN, ST_ASK_PW,
    ST_AUTH_OK, ST_GREET, ST_READY, ST_DONE
};
static const char *const STATE_NAMES[] = {
    "free", "connecting", "welcome", "ask(login)", "ask(password)",
    "auth_ok", "greet", "ready", "done"};

struct opts {
    enum mode mode;
    const char *host;
    int port;
    int conns, depth, size;
    double duration, warmup, rate, timeout;
    int concurrency;
    long count;
    const char *creds;      /* register: output; others: input */
    const char *prefix;     /* register: login prefix */
    int max_per_src;        /* connections per loopback source address */
    int connect_batch;      /* connections opened but not yet welcomed */
    int spin;               /* busy-poll instead of sleeping in epoll_wait */
    long server_pid;        /* report this process's CPU use in the window */
    int rtts;               /* latency: also print every round trip */
} O = {
    .host = "127.0.0.1", .conns = 1, .depth = 1, .size = 64,
    .duration = 5, .warmup = 1, .timeout = 60, .concurrency = 4,
    .connect_batch = 32, .spin = -1,
};

struct conn {
    int fd, idx;
    enum state st;
    unsigned char *rbuf, *wbuf;
    size_t rlen, rcap, wlen, woff, wcap;
    int epout;              /* EPOLLOUT currently requested */
    uint64_t sent, recvd;   /* requests sent / replies verified */
    long cred;              /* flows: index into the credentials */
    double t0, not_before;  /* flows: start time; slot back-off */
};

/* ---------- small helpers ---------- */

static int ep;
static struct conn *C;
static int nconns;
static uint64_t extra_frames;   /* frames of types outside the contract */
static size_t max_frame = 8 * 65536;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen %s: ", MODE_NAMES[O.mode]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) die(2, "out of memory");
    return p;
}

/* Prints a payload for a failure report, truncated and made printable. */
static void show_payload(const char *what, const unsigned char *p, size_t n)
{
    fprintf(stderr, "%s (%zu bytes): ", what, n);
    for (size_t i = 0; i < n && i < 400; i++)
        fputc(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?', stderr);
    if (n > 400) fputs("...", stderr);
    fputc('\n', stderr);
}

static void bad_reply(struct conn *c, const unsigned char *p, size_t n,
                      const char *why)
{
    fprintf(stderr, "loadgen %s: BAD REPLY on connection %d in state %s: %s\n",
            MODE_NAMES[O.mode], c->idx, STATE_NAMES[c->st], why);
    show_payload("first bad reply", p, n);
    exit(1);
}

static void raise_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)need + 16)
        die(2, "RLIMIT_NOFILE is %ld, need %d", (long)rl.rlim_cur, need + 16);
}

/* ---------- request texts ---------- */

/* Texts are ASCII letters; the first 8 encode the connection and sequence
 * number, so a reply that belongs to another request or connection, or
 * arrives out of order, fails the check. */
static const char LETTERS[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
static char *filler;            /* O.size letters */
static unsigned char *say_tpl;  /* a whole say frame, header included */
static size_t say_len;
#define SAY_HEAD "{\"type\":\"say\",\"text\":\""
#define SAY_TAIL "\"}"

static void text_prefix(char out[8], int conn, uint64_t seq)
{
    for (int i = 0; i < 6; i++) { out[i] = LETTERS[seq % 52]; seq /= 52; }
    out[6] = LETTERS[conn % 52];
    out[7] = LETTERS[(conn / 52) % 52];
}

static void texts_init(void)
{
    filler = xrealloc(NULL, (size_t)O.size + 1);
    for (int i = 0; i < O.size; i++) filler[i] = LETTERS[(i * 7 + i / 52) % 52];
    size_t plen = strlen(SAY_HEAD) + (size_t)O.size + strlen(SAY_TAIL);
    say_len = 4 + plen;
    say_tpl = xrealloc(NULL, say_len);
    uint32_t be = htonl((uint32_t)plen);
    memcpy(say_tpl, &be, 4);
    memcpy(say_tpl + 4, SAY_HEAD, strlen(SAY_HEAD));
    memcpy(say_tpl + 4 + strlen(SAY_HEAD), filler, (size_t)O.size);
    memcpy(say_tpl + 4 + strlen(SAY_HEAD) + O.size, SAY_TAIL, strlen(SAY_TAIL));
}

/* ---------- connection plumbing ---------- */

static void want_out(struct conn *c, int on)
{
    if (c->epout == on || c->fd < 0) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epout = on;
}

static unsigned char *wreserve(struct conn *c, size_t n)
{
    if (c->woff && c->woff == c->wlen) c->woff = c->wlen = 0;
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

/* Queues one frame whose payload is given. */
static void send_frame(struct conn *c, const char *payload, size_t n)
{
    unsigned char *p = wreserve(c, 4 + n);
    uint32_t be = htonl((uint32_t)n);
    memcpy(p, &be, 4);
    memcpy(p + 4, payload, n);
}

/* Queues the next say request of this connection. */
static void send_say(struct conn *c)
{
    unsigned char *p = wreserve(c, say_len);
    memcpy(p, say_tpl, say_len);
    char pre[8];
    text_prefix(pre, c->idx, c->sent++);
    memcpy(p + 4 + strlen(SAY_HEAD), pre, O.size < 8 ? (size_t)O.size : 8);
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) close(c->fd);   /* close() also leaves the epoll set */
    c->fd = -1;
    c->st = ST_FREE;
    c->rlen = c->wlen = c->woff = 0;
    c->epout = 0;
}

static void flush(struct conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t w = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (w > 0) { c->woff += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) { want_out(c, 1); return; }
        die(1, "write on connection %d: %s", c->idx, strerror(errno));
    }
    c->woff = c->wlen = 0;
    want_out(c, 0);
}

static uint32_t src_base = 0x7F000001;  /* 127.0.0.1 */

static void conn_open(struct conn *c)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(O.port)};
    if (inet_pton(AF_INET, O.host, &sa.sin_addr) != 1)
        die(2, "bad --host %s (IPv4 address expected)", O.host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) die(2, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Spread connections over loopback source addresses so that a server's
     * per-address connection limit does not cap the test (all of 127/8 is
     * this machine's loopback). */
    if (O.max_per_src > 0 && (ntohl(sa.sin_addr.s_addr) >> 24) == 127) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(src_base + (uint32_t)(c->idx / O.max_per_src));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0)
            die(2, "bind source address: %s", strerror(errno));
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
        die(1, "connect to %s:%d: %s", O.host, O.port, strerror(errno));
    c->fd = fd;
    c->st = ST_CONNECTING;
    c->rlen = c->wlen = c->woff = 0;
    c->sent = c->recvd = 0;
    c->epout = 1;
    if (!c->rbuf) { c->rcap = 4096; c->rbuf = xrealloc(NULL, c->rcap); }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die(2, "epoll_ctl: %s", strerror(errno));
}

/* ---------- reply checks shared by the modes ---------- */

static const char *const KEYS[] = {"type", "text", "n", "of", "field", "via",
                                   "token", "code", "max_message", "mode"};
enum { K_TYPE, K_TEXT, K_N, K_OF, K_FIELD, K_VIA, K_TOKEN, K_CODE, K_MAXMSG,
       K_MODE, NKEYS };

/* Types the contract names, in either direction.  A frame of any other type
 * is a project extension: it is skipped and counted (extra_frames); a
 * contract type where another was due is a bad reply. */
static int contract_type(const jval *t)
{
    static const char *const types[] = {"welcome", "ask", "greet", "auth_ok",
                                        "echo", "error", "bye", "answer",
                                        "token", "say", "logout", "quit"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (json_str_eq(t, types[i])) return 1;
    return 0;
}

/* Error codes a flow may meet under load without anything being wrong. */
static const char *const TOLERATED[] = {"busy", "rate_limited"};
#define NTOL 2
static uint64_t tolerated[NTOL];

static int tolerated_error(const jval *v)
{
    for (int i = 0; i < NTOL; i++)
        if (json_str_eq(&v[K_CODE], TOLERATED[i])) { tolerated[i]++; return 1; }
    return 0;
}

static void print_errors(void)
{
    printf("\"errors\":{");
    for (int i = 0; i < NTOL; i++)
        printf("%s\"%s\":%llu", i ? "," : "", TOLERATED[i],
               (unsigned long long)tolerated[i]);
    printf("}");
}

static char *scratch;   /* unescape buffer, max_frame bytes */

/* Checks that v[K_TEXT] is the text of request (conn, seq). */
static int text_matches(const struct conn *c, const jval *v, uint64_t seq)
{
    const jval *t = &v[K_TEXT];
    if (t->kind != 's') return 0;
    const char *p = t->p;
    size_t n = t->n;
    if (t->escaped) { n = json_unescape(t, scratch); p = scratch; }
    if (n != (size_t)O.size) return 0;
    char pre[8];
    text_prefix(pre, c->idx, seq);
    size_t k = O.size < 8 ? (size_t)O.size : 8;
    return memcmp(p, pre, k) == 0 && memcmp(p + k, filler + k, n - k) == 0;
}

/* ---------- per-mode state ---------- */

static double t_start, t_ws, t_we;      /* run start, measuring window */
static double t_event;                   /* when the current events arrived */
static double idle_secs;                 /* in the window, with nothing to do */
static int phase;                        /* 0 connecting, 1 warm-up, 2 measuring, 3 over */
static int opened, ready, refused, failed;
static uint64_t measured;                /* replies or flows in the window */

/* latency */
#define RING 65536
static double ring[RING];
static double *rtts;
static size_t nrtt, rtt_cap;
static uint64_t late_ticks;

/* flows */
struct cred { char login[40], pw[40], token[512]; };
static struct cred *creds;
static long ncreds, next_cred, reg_serial;
static double *flow_ms;
static size_t nflow, flow_cap;
static char reg_prefix[24];

static void rtt_add(double us)
{
    if (nrtt == rtt_cap) {
        rtt_cap = rtt_cap ? rtt_cap * 2 : 4096;
        rtts = xrealloc(rtts, rtt_cap * sizeof *rtts);
    }
    rtts[nrtt++] = us;
}

static void flow_add(double ms)
{
    if (nflow == flow_cap) {
        flow_cap = flow_cap ? flow_cap * 2 : 4096;
        flow_ms = xrealloc(flow_ms, flow_cap * sizeof *flow_ms);
    }
    flow_ms[nflow++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double q)
{
    if (!n) return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static void load_creds(void)
{
    if (!O.creds) die(2, "--creds FILE is needed (written by the register mode)");
    FILE *f = fopen(O.creds, "r");
    if (!f) die(2, "open %s: %s", O.creds, strerror(errno));
    char line[700];
    while (fgets(line, sizeof line, f)) {
        struct cred cr = {0};
        if (sscanf(line, "%39s %39s %511s", cr.login, cr.pw, cr.token) != 3) continue;
        creds = xrealloc(creds, (size_t)(ncreds + 1) * sizeof *creds);
        creds[ncreds++] = cr;
    }
    fclose(f);
    if (!ncreds) die(2, "no credentials in %s", O.creds);
}

static void save_creds(void)
{
    if (!O.creds) return;
    FILE *f = fopen(O.creds, "w");
    if (!f) die(2, "write %s: %s", O.creds, strerror(errno));
    for (long i = 0; i < ncreds; i++)
        fprintf(f, "%s %s %s\n", creds[i].login, creds[i].pw, creds[i].token);
    fclose(f);
}

static void random_hex(char *out, int n)
{
    unsigned char b[32];
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, b, (size_t)(n + 1) / 2) < (n + 1) / 2)
        die(2, "cannot read /dev/urandom");
    close(fd);
    for (int i = 0; i < n; i++) out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 * 4)) & 15];
    out[n] = 0;
}

/* Sends {"type":"answer","field":F,"value":V} (V needs no escaping). */
static void send_answer(struct conn *c, const char *field, const char *value)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"answer\",\"field\":\"%s\",\"value\":\"%s\"}",
                     field, value);
    send_frame(c, buf, (size_t)n);
}

static void send_token(struct conn *c, const char *tok)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"token\",\"token\":\"%s\"}", tok);
    send_frame(c, buf, (size_t)n);
}

static int is_flow_mode(void)
{
    return O.mode == M_REGISTER || O.mode == M_PWLOGIN || O.mode == M_TOKENLOGIN;
}

static void flow_start(struct conn *c)
{
    c->t0 = now();
    if (O.mode == M_REGISTER) {
        c->cred = -1;
    } else {
        c->cred = next_cred++ % ncreds;
    }
    conn_open(c);
}

static void flow_done(struct conn *c)
{
    double t = now();
    if (phase == 2 && t >= t_ws && (O.count || t < t_we)) {
        measured++;
        flow_add((t - c->t0) * 1e3);
    }
    conn_close(c);
}

static void on_ready(struct conn *c);

/* The session step after welcome, for the auth modes and an authenticated
 * latency run. */
static void on_first_ask(struct conn *c, const jval *v, const unsigned char *p,
                         size_t n)
{
    if (!json_str_eq(&v[K_TYPE], "ask")) bad_reply(c, p, n, "expected ask");
    if (O.mode == M_TOKENLOGIN || O.mode == M_LATENCY) {
        send_token(c, creds[c->cred].token);
        c->st = ST_AUTH_OK;
        return;
    }
    if (!json_str_eq(&v[K_FIELD], "login")) bad_reply(c, p, n, "expected ask for login");
    if (O.mode == M_REGISTER) {
        struct cred cr = {0};
        char hex[20];
        snprintf(cr.login, sizeof cr.login, "%s%ld", reg_prefix, reg_serial++);
        random_hex(hex, 16);
        snprintf(cr.pw, sizeof cr.pw, "Bench-%s", hex);
        creds = xrealloc(creds, (size_t)(ncreds + 1) * sizeof *creds);
        creds[ncreds] = cr;
        c->cred = ncreds++;
    }
    send_answer(c, "login", creds[c->cred].login);
    c->st = ST_ASK_PW;
}

/* Handles one frame of an auth flow (or the latency preamble). */
static void on_flow_frame(struct conn *c, const jval *v, const unsigned char *p,
                          size_t n)
{
    if (json_str_eq(&v[K_TYPE], "error")) {
        if (tolerated_error(v)) {
            /* The flow is abandoned; its slot waits a little. */
            if (O.mode == M_REGISTER && c->cred >= 0 && creds[c->cred].token[0] == 0)
                creds[c->cred].login[0] = 0;
            c->not_before = now() + 0.05;
            conn_close(c);
            return;
        }
        bad_reply(c, p, n, "unexpected error");
    }
    switch (c->st) {
    case ST_WELCOME:
        if (!json_str_eq(&v[K_TYPE], "welcome")) bad_reply(c, p, n, "expected welcome");
        c->st = ST_ASK_LOGIN;
        break;
    case ST_ASK_LOGIN:
        on_first_ask(c, v, p, n);
        break;
    case ST_ASK_PW: {
        const char *want = O.mode == M_REGISTER ? "new_password" : "password";
        if (!json_str_eq(&v[K_TYPE], "ask") || !json_str_eq(&v[K_FIELD], want))
            bad_reply(c, p, n, O.mode == M_REGISTER ? "expected ask for new_password"
                                                    : "expected ask for password");
        send_answer(c, want, creds[c->cred].pw);
        c->st = ST_AUTH_OK;
        break;
    }
    case ST_AUTH_OK: {
        const char *via = O.mode == M_REGISTER ? "register"
                        : O.mode == M_PWLOGIN ? "password" : "token";
        if (!json_str_eq(&v[K_TYPE], "auth_ok")) bad_reply(c, p, n, "expected auth_ok");
        if (!json_str_eq(&v[K_VIA], via)) bad_reply(c, p, n, "auth_ok with a wrong via");
        int want_token = O.mode == M_REGISTER || O.mode == M_PWLOGIN;
        if (want_token != (v[K_TOKEN].kind == 's'))
            bad_reply(c, p, n, want_token ? "auth_ok without a token"
                                          : "token auth_ok carries a token");
        if (O.mode == M_REGISTER) {
            if (v[K_TOKEN].n >= sizeof creds[0].token || v[K_TOKEN].escaped)
                bad_reply(c, p, n, "token too long or escaped");
            memcpy(creds[c->cred].token, v[K_TOKEN].p, v[K_TOKEN].n);
            creds[c->cred].token[v[K_TOKEN].n] = 0;
        }
        c->st = ST_GREET;
        break;
    }
    case ST_GREET:
        if (!json_str_eq(&v[K_TYPE], "greet")) bad_reply(c, p, n, "expected greet");
        if (O.mode == M_LATENCY) { on_ready(c); break; }
        flow_done(c);
        break;
    default:
        bad_reply(c, p, n, "frame in an unexpected state");
    }
}

static void on_ready(struct conn *c)
{
    c->st = ST_READY;
    ready++;
}

/* Dispatches one complete frame.  Returns 0, or -1 if c was closed. */
static int on_frame(struct conn *c, const unsigned char *p, size_t n)
{
    jval v[NKEYS];
    if (json_object_get((const char *)p, n, KEYS, NKEYS, v) < 0)
        bad_reply(c, p, n, "not a JSON object");
    if (v[K_TYPE].kind != 's') bad_reply(c, p, n, "no string member type");
    if (!contract_type(&v[K_TYPE])) { extra_frames++; return 0; }

    if (is_flow_mode() || (O.mode == M_LATENCY && creds && c->st != ST_READY)) {
        on_flow_frame(c, v, p, n);
        return c->fd < 0 ? -1 : 0;
    }
    if (c->st == ST_WELCOME) {
        if (json_str_eq(&v[K_TYPE], "error") && O.mode != M_LATENCY) {
            /* e.g. busy: the server refused this connection, which the
             * result reports; the connection is not used. */
            refused++;
            tolerated_error(v);
            conn_close(c);
            return -1;
        }
        if (!json_str_eq(&v[K_TYPE], "welcome")) bad_reply(c, p, n, "expected welcome");
        if (v[K_MAXMSG].kind == 'n' && v[K_MAXMSG].integer) {
            long mm = strtol(v[K_MAXMSG].p, NULL, 10);
            if (mm > 0 && (size_t)mm * 8 > max_frame) {
                max_frame = (size_t)mm * 8;
                scratch = xrealloc(scratch, max_frame);
            }
        }
        on_ready(c);
        return 0;
    }
    if (c->st != ST_READY) bad_reply(c, p, n, "frame in an unexpected state");
    if (O.mode == M_IDLE) bad_reply(c, p, n, "unexpected frame on an idle connection");
    /* pipeline and latency: an echo of the oldest outstanding request */
    if (!json_str_eq(&v[K_TYPE], "echo")) bad_reply(c, p, n, "expected echo");
    if (v[K_N].kind || v[K_OF].kind) bad_reply(c, p, n, "n/of present without repeat");
    if (c->recvd >= c->sent) bad_reply(c, p, n, "echo with no request outstanding");
    if (!text_matches(c, v, c->recvd))
        bad_reply(c, p, n, "echo text differs from the text sent");
    double t = t_event;
    if (O.mode == M_PIPELINE) {
        if (phase == 2 && t >= t_ws && t < t_we) measured++;
        if (phase < 3) send_say(c);
    } else {
        double sent_at = ring[c->recvd % RING];
        if (phase >= 2 && sent_at >= t_ws && sent_at < t_we)
            rtt_add((t - sent_at) * 1e6);
    }
    c->recvd++;
    return 0;
}

#define READ_MAX (256 * 1024)

static void on_readable(struct conn *c)
{
    if (c->rlen == c->rcap) {
        c->rcap *= 2;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    size_t room = c->rcap - c->rlen;
    ssize_t r = read(c->fd, c->rbuf + c->rlen, room);
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR) return;
        if (c->st == ST_WELCOME || c->st == ST_CONNECTING) {
            failed++;
            fprintf(stderr, "loadgen: connection %d: %s before welcome\n", c->idx,
                    strerror(errno));
            conn_close(c);
            return;
        }
        die(1, "read on connection %d (state %s): %s", c->idx, STATE_NAMES[c->st],
            strerror(errno));
    }
    if (r == 0) {
        if (c->st == ST_WELCOME && O.mode != M_LATENCY && !is_flow_mode()) {
            failed++;
            conn_close(c);
            return;
        }
        if (O.mode == M_IDLE && c->st == ST_READY) {
            failed++;   /* closed while held: reported as lost */
            ready--;
            conn_close(c);
            return;
        }
        die(1, "connection %d closed by the server in state %s", c->idx,
            STATE_NAMES[c->st]);
    }
    c->rlen += (size_t)r;
    size_t off = 0;
    while (c->rlen - off >= 4) {
        uint32_t len;
        memcpy(&len, c->rbuf + off, 4);
        len = ntohl(len);
        if (len == 0 || len > max_frame) {
            fprintf(stderr, "loadgen: connection %d: frame length %u is not sane\n",
                    c->idx, len);
            bad_reply(c, c->rbuf + off, c->rlen - off, "bad frame length");
        }
        if (c->rlen - off < 4 + (size_t)len) {
            if (4 + (size_t)len > c->rcap) {
                memmove(c->rbuf, c->rbuf + off, c->rlen - off);
                c->rlen -= off;
                off = 0;
                c->rcap = 4 + (size_t)len;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            break;
        }
        if (on_frame(c, c->rbuf + off + 4, len) < 0) return;   /* closed */
        off += 4 + (size_t)len;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    if ((size_t)r == room && c->rcap < READ_MAX) {
        /* a busy connection: read more of what is waiting per call */
        c->rcap *= 2;
        c->rbuf = xrealloc(c->rbuf, c->rcap);
    }
    if (c->wlen) flush(c);
}

static void on_writable(struct conn *c)
{
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            if (is_flow_mode() || O.mode == M_LATENCY)
                die(1, "connect to %s:%d: %s", O.host, O.port, strerror(err));
            failed++;
            fprintf(stderr, "loadgen: connection %d: connect: %s\n", c->idx,
                    strerror(err));
            conn_close(c);
            return;
        }
        c->st = ST_WELCOME;
    }
    flush(c);
}

/* ---------- result lines ---------- */

static void print_head(void)
{
    printf("{\"mode\":\"%s\",", MODE_NAMES[O.mode]);
}

/* CPU seconds (user + system) process PID has used so far; -1 if unknown. */
static double cpu_secs_of(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');   /* after the command name, which may hold spaces */
    unsigned long user, sys;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                     &user, &sys) != 2)
        return -1;
    return (double)(user + sys) / (double)sysconf(_SC_CLK_TCK);
}

static double server_cpu_ws = -1, server_cpu_we = -1;   /* at window start, end */

/* Share of one CPU the server used in the window (--server-pid), or -1. */
static double server_cpu_share(void)
{
    double w = t_we - t_ws;
    if (server_cpu_ws < 0 || server_cpu_we < 0 || w <= 0) return -1;
    return (server_cpu_we - server_cpu_ws) / w;
}

/* Share of the measured window this process had work to do. */
static double busy_share(void)
{
    double w = t_we - t_ws;
    return w > 0 ? 1 - idle_secs / w : 0;
}

static void report_pipeline(void)
{
    double secs = t_we - t_ws;
    print_head();
    printf("\"conns\":%d,\"conns_ready\":%d,\"refused\":%d,\"failed\":%d,"
           "\"depth\":%d,\"size\":%d,\"msgs\":%llu,\"seconds\":%.3f,"
           "\"msgs_per_s\":%.1f,\"extra_frames\":%llu,\"loadgen_busy\":%.3f,",
           O.conns, ready, refused, failed, O.depth, O.size,
           (unsigned long long)measured, secs, (double)measured / secs,
           (unsigned long long)extra_frames, busy_share());
    double cpu = server_cpu_share();
    if (cpu >= 0) printf("\"server_cpu\":%.3f,", cpu);
    print_errors();
    printf("}\n");
}

static void report_latency(void)
{
    qsort(rtts, nrtt, sizeof *rtts, cmp_double);
    print_head();
    printf("\"rate\":%.1f,\"size\":%d,\"samples\":%zu,\"seconds\":%.3f,"
           "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
           "\"max_us\":%.1f,\"late_ticks\":%llu,\"loadgen_busy\":%.3f",
           O.rate, O.size, nrtt, t_we - t_ws, pct(rtts, nrtt, .5), pct(rtts, nrtt, .9),
           pct(rtts, nrtt, .99), pct(rtts, nrtt, .999), nrtt ? rtts[nrtt - 1] : 0,
           (unsigned long long)late_ticks, busy_share());
    if (O.rtts) {
        /* every round trip, so runs can be pooled before taking percentiles */
        printf(",\"rtts_us\":[");
        for (size_t i = 0; i < nrtt; i++) printf(i ? ",%.1f" : "%.1f", rtts[i]);
        printf("]");
    }
    printf("}\n");
}

/* Share of one CPU this process used since it started: for the modes that
 * sleep when idle (flows), a low figure shows the load generator had room. */
static double cpu_share(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double used = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
                  (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
    return used / (now() - t_start);
}

static void report_flows(double secs)
{
    qsort(flow_ms, nflow, sizeof *flow_ms, cmp_double);
    print_head();
    printf("\"concurrency\":%d,\"rate\":%.1f,\"flows\":%llu,\"seconds\":%.3f,"
           "\"flows_per_s\":%.2f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,"
           "\"late_starts\":%llu,\"extra_frames\":%llu,\"loadgen_cpu\":%.3f,",
           O.concurrency, O.rate, (unsigned long long)measured, secs,
           secs > 0 ? (double)measured / secs : 0, pct(flow_ms, nflow, .5),
           pct(flow_ms, nflow, .99), nflow ? flow_ms[nflow - 1] : 0,
           (unsigned long long)late_ticks, (unsigned long long)extra_frames,
           cpu_share());
    print_errors();
    printf("}\n");
}

/* ---------- main loop ---------- */

static void handle_events(int timeout_ms, int tfd, int *tick, int *stdin_eof)
{
    struct epoll_event evs[256];
    /* Spinning keeps this (dedicated) CPU awake, so the load generator's
     * own wake-up latency stays out of round-trip figures. */
    double t0 = now();
    int n = epoll_wait(ep, evs, 256, O.spin > 0 && phase > 0 ? 0 : timeout_ms);
    if (n < 0 && errno != EINTR) die(2, "epoll_wait: %s", strerror(errno));
    /* one clock read per batch of events, not per reply: replies are
     * handled within microseconds of their arrival */
    double t1 = now();
    if (n > 0) t_event = t1;
    /* Time with nothing to do (an empty poll, or a sleep in epoll_wait)
     * measures this process's headroom in the window. */
    if (phase == 2 && t0 >= t_ws && t1 <= t_we && (n <= 0 || O.spin <= 0))
        idle_secs += t1 - t0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {          /* timerfd */
            uint64_t k = 0;
            if (read(tfd, &k, sizeof k) == sizeof k) *tick += (int)k;
            continue;
        }
        if (evs[i].data.ptr == (void *)&ep) {   /* stdin (idle mode) */
            char b[256];
            ssize_t r = read(0, b, sizeof b);
            if (r <= 0) *stdin_eof = 1;
            continue;
        }
        struct conn *c = evs[i].data.ptr;
        if (c->fd < 0) continue;
        uint32_t e = evs[i].events;
        if (e & EPOLLOUT) on_writable(c);
        if (c->fd >= 0 && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->st != ST_CONNECTING)
            on_readable(c);
        else if (c->fd >= 0 && (e & (EPOLLERR | EPOLLHUP)) && c->st == ST_CONNECTING)
            on_writable(c);
    }
}

/* Opens connections while fewer than connect_batch await their welcome. */
static void open_more(void)
{
    /* every opened connection ends up ready, refused or failed */
    int pending = opened - (ready + refused + failed);
    while (opened < nconns && pending < O.connect_batch) {
        conn_open(&C[opened++]);
        pending++;
    }
}

static int make_timer(double rate)
{
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0) die(2, "timerfd: %s", strerror(errno));
    long ns = (long)(1e9 / rate);
    struct itimerspec its = {.it_interval = {ns / 1000000000, ns % 1000000000},
                             .it_value = {ns / 1000000000, ns % 1000000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    return tfd;
}

static int ms_until(double t)
{
    double d = (t - now()) * 1e3;
    return d <= 0 ? 0 : d > 100 ? 100 : (int)d + 1;
}

static void run_connected_modes(void)
{
    /* pipeline, idle and latency: open everything, then time the run */
    int tfd = -1, tick = 0, stdin_eof = 0;
    double deadline = t_start + O.timeout;
    while (ready + refused + failed < nconns) {
        open_more();
        handle_events(10, tfd, &tick, &stdin_eof);
        if (now() > deadline)
            die(1, "connect phase timed out: %d of %d connections welcomed, "
                   "%d refused, %d failed", ready, nconns, refused, failed);
    }
    if (ready == 0) die(1, "no connection was welcomed (%d refused, %d failed)",
                        refused, failed);
    if (O.mode == M_IDLE) {
        printf("{\"mode\":\"idle\",\"event\":\"ready\",\"conns\":%d,\"welcomed\":%d,"
               "\"refused\":%d,\"failed\":%d,\"connect_seconds\":%.3f,",
               nconns, ready, refused, failed, now() - t_start);
        print_errors();
        printf("}\n");
        fflush(stdout);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)&ep};
        int use_stdin = epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == 0;
        double until = now() + (use_stdin ? O.timeout : O.duration);
        while (!stdin_eof && now() < until)
            handle_events(100, tfd, &tick, &stdin_eof);
        printf("{\"mode\":\"idle\",\"event\":\"done\",\"held\":%d,\"lost\":%d}\n",
               ready, failed);
        return;
    }
    /* Load starts only once every connection is in, so a server busy with
     * the first connections cannot starve the accepting of the others. */
    if (O.mode == M_PIPELINE)
        for (int i = 0; i < nconns; i++)
            if (C[i].st == ST_READY) {
                for (int k = 0; k < O.depth; k++) send_say(&C[i]);
                flush(&C[i]);
            }
    if (O.mode == M_LATENCY) tfd = make_timer(O.rate);
    double t_begin = now();
    t_ws = t_begin + O.warmup;
    t_we = t_ws + O.duration;
    phase = 1;
    struct conn *lc = &C[0];
    while (phase < 3) {
        double t = now();
        if (phase == 1 && t >= t_ws) {
            phase = 2; t_ws = t; t_we = t + O.duration;
            if (O.server_pid) server_cpu_ws = cpu_secs_of(O.server_pid);
        }
        if (phase == 2 && t >= t_we) {
            phase = 3;
            if (O.server_pid) server_cpu_we = cpu_secs_of(O.server_pid);
            break;
        }
        handle_events(tfd >= 0 ? 100 : ms_until(phase == 1 ? t_ws : t_we), tfd,
                      &tick, &stdin_eof);
        if (tick) {
            /* open loop: every tick sends one ping, whether or not earlier
             * ones came back, so a slow reply cannot hide later ones */
            if (tick > 1) late_ticks += (uint64_t)(tick - 1);
            double ts = now();
            for (; tick > 0; tick--) {
                if (lc->sent - lc->recvd >= RING) die(1, "too many pings outstanding");
                ring[lc->sent % RING] = ts;
                send_say(lc);
            }
            flush(lc);
        }
    }
    if (O.mode == M_LATENCY) {
        /* let the pings of the window come back */
        double until = now() + 2;
        while (lc->recvd < lc->sent && now() < until)
            handle_events(10, tfd, &tick, &stdin_eof);
        if (lc->recvd < lc->sent)
            die(1, "%llu pings unanswered after 2 s",
                (unsigned long long)(lc->sent - lc->recvd));
        report_latency();
    } else {
        report_pipeline();
    }
}

static void run_flows(void)
{
    int tfd = -1, tick = 0, stdin_eof = 0;
    long pending_starts = 0;
    if (O.rate > 0) tfd = make_timer(O.rate);
    t_ws = t_start + (O.count ? 0 : O.warmup);
    t_we = t_ws + O.duration;
    phase = O.count ? 2 : 1;
    for (;;) {
        double t = now();
        if (phase == 1 && t >= t_ws) { phase = 2; t_ws = t; t_we = t + O.duration; }
        if (O.count ? (long)measured >= O.count : (phase == 2 && t >= t_we)) break;
        if (O.count && t - t_start > O.timeout)
            die(1, "only %llu of %ld flows done in %.0f s",
                (unsigned long long)measured, O.count, O.timeout);
        if (tick) { pending_starts += tick; tick = 0; }
        int busy = 0;
        for (int i = 0; i < nconns; i++) busy += C[i].st != ST_FREE;
        for (int i = 0; i < nconns; i++) {
            struct conn *c = &C[i];
            if (c->st != ST_FREE || t < c->not_before) continue;
            if (O.count && (long)measured + busy >= O.count) break;
            busy++;
            if (O.rate > 0) {
                if (pending_starts <= 0) break;
                pending_starts--;
            }
            flow_start(c);
        }
        if (O.rate > 0 && pending_starts > 1) {
            /* no free slot: the server is slower than the rate asked */
            late_ticks += (uint64_t)(pending_starts - 1);
            pending_starts = 1;
        }
        handle_events(O.count ? 10 : ms_until(phase == 1 ? t_ws : t_we), tfd,
                      &tick, &stdin_eof);
    }
    double secs = O.count ? now() - t_start : now() - t_ws;
    if (O.mode == M_REGISTER) {
        /* keep only completed registrations */
        long k = 0;
        for (long i = 0; i < ncreds; i++)
            if (creds[i].token[0] && creds[i].login[0]) creds[k++] = creds[i];
        ncreds = k;
        save_creds();
    }
    report_flows(secs);
}

static void usage(void)
{
    fprintf(stderr,
        "usage: loadgen MODE --port P [options]\n"
        "modes: pipeline idle latency register pwlogin tokenlogin\n"
        "  --host ADDR          server IPv4 address (127.0.0.1)\n"
        "  --conns N            pipeline/idle: connections (1)\n"
        "  --depth D            pipeline: requests in flight per connection (1)\n"
        "  --size S             pipeline/latency: text length in letters (64)\n"
        "  --duration SEC       measured seconds (5)\n"
        "  --warmup SEC         unmeasured seconds first (1)\n"
        "  --rate R             latency: pings/s; flows: starts/s (0 = closed loop)\n"
        "  --concurrency K      flows in flight (4)\n"
        "  --count N            flows: stop after N flows instead of a duration\n"
        "  --creds FILE         register writes 'login password token' lines;\n"
        "                       pwlogin/tokenlogin/latency read them\n"
        "  --prefix P           register: login prefix (random by default)\n"
        "  --max-per-src N      at most N connections per 127.0.0.x source\n"
        "  --connect-batch N    connections awaiting welcome at once (32)\n"
        "  --timeout SEC        connect phase / idle hold limit (60)\n"
        "  --spin / --no-spin   busy-poll once connected (default: on for\n"
        "                       pipeline and latency, which get their own CPU)\n"
        "  --server-pid PID     pipeline: also report the share of a CPU that\n"
        "                       process used in the window (server_cpu)\n"
        "  --rtts               latency: also print every round trip (rtts_us)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    int m = -1;
    for (int i = 0; i < 6; i++)
        if (strcmp(argv[1], MODE_NAMES[i]) == 0) m = i;
    if (m < 0) usage();
    O.mode = (enum mode)m;
    static struct option lo[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"conns", 1, 0, 'c'},
        {"depth", 1, 0, 'd'}, {"size", 1, 0, 's'}, {"duration", 1, 0, 'T'},
        {"warmup", 1, 0, 'W'}, {"rate", 1, 0, 'r'}, {"concurrency", 1, 0, 'k'},
        {"count", 1, 0, 'n'}, {"creds", 1, 0, 'f'}, {"prefix", 1, 0, 'P'},
        {"max-per-src", 1, 0, 'm'}, {"connect-batch", 1, 0, 'b'},
        {"timeout", 1, 0, 't'}, {"spin", 0, 0, 'S'}, {"no-spin", 0, 0, 'N'},
        {"server-pid", 1, 0, 'C'}, {"rtts", 0, 0, 'R'}, {0, 0, 0, 0}};
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': O.host = optarg; break;
        case 'p': O.port = atoi(optarg); break;
        case 'c': O.conns = atoi(optarg); break;
        case 'd': O.depth = atoi(optarg); break;
        case 's': O.size = atoi(optarg); break;
        case 'T': O.duration = atof(optarg); break;
        case 'W': O.warmup = atof(optarg); break;
        case 'r': O.rate = atof(optarg); break;
        case 'k': O.concurrency = atoi(optarg); break;
        case 'n': O.count = atol(optarg); break;
        case 'f': O.creds = optarg; break;
        case 'P': O.prefix = optarg; break;
        case 'm': O.max_per_src = atoi(optarg); break;
        case 'b': O.connect_batch = atoi(optarg); break;
        case 't': O.timeout = atof(optarg); break;
        case 'S': O.spin = 1; break;
        case 'N': O.spin = 0; break;
        case 'C': O.server_pid = atol(optarg); break;
        case 'R': O.rtts = 1; break;
        default: usage();
        }
    }
    if (O.port <= 0 || O.port > 65535) die(2, "--port is required");
    if (O.conns < 1 || O.depth < 1 || O.size < 1 || O.concurrency < 1) usage();
    if (O.size > 65536 - 64) die(2, "--size must leave the say frame under 64 KiB");
    if (O.mode == M_LATENCY && O.rate <= 0) O.rate = 1000;
    if (O.spin < 0) O.spin = O.mode == M_PIPELINE || O.mode == M_LATENCY;
    signal(SIGPIPE, SIG_IGN);

    ep = epoll_create1(EPOLL_CLOEXEC);
    scratch = xrealloc(NULL, max_frame);
    texts_init();
    nconns = O.mode == M_LATENCY ? 1 : is_flow_mode() ? O.concurrency : O.conns;
    raise_nofile(nconns);
    C = calloc((size_t)nconns, sizeof *C);
    for (int i = 0; i < nconns; i++) { C[i].fd = -1; C[i].idx = i; }
    t_start = now();

    if (O.mode == M_REGISTER) {
        if (O.prefix) snprintf(reg_prefix, sizeof reg_prefix, "%.16s", O.prefix);
        else { char h[9]; random_hex(h, 8); snprintf(reg_prefix, sizeof reg_prefix, "b%s-", h); }
    }
    if (O.mode == M_PWLOGIN || O.mode == M_TOKENLOGIN) load_creds();
    if (O.mode == M_LATENCY && O.creds) {
        load_creds();
        C[0].cred = 0;      /* authenticate with the first token, then ping */
    }
    if (is_flow_mode()) run_flows();
    else run_connected_modes();
    fflush(stdout);
    return 0;
}
