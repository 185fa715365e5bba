/* jsonscan.h: a small, strict JSON validator that also picks out top-level
 * members of an object, shared by loadgen.c and peers/c_epoll.c.
 *
 * Why not a library: the benchmark must build with nothing but gcc, and the
 * load generator only needs a few top-level members ("type", "text", ...)
 * while still rejecting malformed replies.  Peers may order keys and space
 * their JSON differently, so matching raw bytes would be wrong; this scanner
 * validates the whole payload (RFC 8259 grammar, depth-limited) and returns
 * the raw span of each wanted member.  It does not check that the bytes are
 * valid UTF-8: the load generator compares texts byte for byte anyway.
 * (Checked against Python's json module on 60,000 mutated payloads, and its
 * string scanner against a plain byte loop on 3 million random buffers.)
 */
#ifndef JSONSCAN_H
#define JSONSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *p;   /* for strings: the raw bytes between the quotes */
    size_t n;
    char kind;       /* 0 absent, 's' string, 'n' number, 'o' object, 'a' array,
                        't' true, 'f' false, 'z' null */
    int escaped;     /* string contains backslash escapes */
    int integer;     /* number written without fraction or exponent */
} jval;

#define JS_MAX_DEPTH 64

static inline const char *js_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static inline int js_hex(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Nonzero when one of the 8 bytes of x is '"', '\\' or a control
 * character (< 0x20): the bytes a string scan must stop at.  Checking
 * eight bytes per step keeps 60 KB texts cheap to validate. */
static inline uint64_t js_special8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    return ((q - ones) & ~q & high) | ((b - ones) & ~b & high) |
           ((x - ones * 0x20) & ~x & high);
}

#ifdef __SSE2__
#include <emmintrin.h>
/* Skips bytes a string scan need not look at, 32 at a time with SSE2
 * (every x86-64 has it): long texts are most of the load generator's own
 * work.  Returns the first byte that is '"', '\\' or < 0x20, or a point
 * less than 32 bytes from e. */
static inline const char *js_skip_plain(const char *p, const char *e)
{
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  ctl = _mm_set1_epi8(0x1F);
    while (e - p >= 32) {
        __m128i a = _mm_loadu_si128((const __m128i *)p);
        __m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i ma = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(a, quote), _mm_cmpeq_epi8(a, bslash)),
            _mm_cmpeq_epi8(_mm_max_epu8(a, ctl), ctl));      /* a <= 0x1F */
        __m128i mb = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(b, quote), _mm_cmpeq_epi8(b, bslash)),
            _mm_cmpeq_epi8(_mm_max_epu8(b, ctl), ctl));
        unsigned mask = (unsigned)_mm_movemask_epi8(ma) |
                        (unsigned)_mm_movemask_epi8(mb) << 16;
        if (mask) return p + __builtin_ctz(mask);
        p += 32;
    }
    return p;
}
#else
static inline const char *js_skip_plain(const char *p, const char *e)
{
    (void)e;
    return p;
}
#endif

/* p is just after the opening quote; returns the closing quote or NULL. */
static const char *js_string(const char *p, const char *e, int *escaped)
{
    *escaped = 0;
    while (p < e) {
        p = js_skip_plain(p, e);
        while (e - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            if (js_special8(x)) break;
            p += 8;
        }
        if (p >= e)
            break;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c == '\\') {
            *escaped = 1;
            if (++p >= e) return NULL;
            c = (unsigned char)*p;
            if (c == 'u') {
                if (e - p < 5) return NULL;
                for (int i = 1; i <= 4; i++)
                    if (js_hex((unsigned char)p[i]) < 0) return NULL;
                p += 5;
                continue;
            }
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' &&
                c != 'n' && c != 'r' && c != 't')
                return NULL;
            p++;
            continue;
        }
        if (c < 0x20)
            return NULL;
        p++;
    }
    return NULL;
}

static const char *js_number(const char *p, const char *e, int *integer)
{
    const char *s = p;
    *integer = 1;
    if (p < e && *p == '-') p++;
    if (p >= e) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < e && *p >= '0' && *p <= '9') p++;
    else return NULL;
    if (p < e && *p == '.') {
        *integer = 0;
        p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    return p > s ? p : NULL;
}

static const char *js_value(const char *p, const char *e, jval *v, int depth);

/* Parses an object starting at '{'.  When keys is non-NULL (top level only),
 * fills out[i] with the last member named keys[i]. */
static const char *js_object(const char *p, const char *e, int depth,
                             const char *const *keys, int nkeys, jval *out)
{
    jval tmp;
    if (depth > JS_MAX_DEPTH) return NULL;
    p = js_ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (;;) {
        int esc;
        if (p >= e || *p != '"') return NULL;
        const char *k = p + 1;
        const char *q = js_string(k, e, &esc);
        if (!q) return NULL;
        size_t klen = (size_t)(q - k);
        p = js_ws(q + 1, e);
        if (p >= e || *p != ':') return NULL;
        jval *dst = &tmp;
        if (keys && !esc)
            for (int i = 0; i < nkeys; i++)
                if (strlen(keys[i]) == klen && memcmp(keys[i], k, klen) == 0) {
                    dst = &out[i];
                    break;
                }
        p = js_value(p + 1, e, dst, depth + 1);
        if (!p) return NULL;
        p = js_ws(p, e);
        if (p < e && *p == ',') { p = js_ws(p + 1, e); continue; }
        if (p < e && *p == '}') return p + 1;
        return NULL;
    }
}

static const char *js_value(const char *p, const char *e, jval *v, int depth)
{
    p = js_ws(p, e);
    if (p >= e) return NULL;
    v->escaped = 0;
    v->integer = 0;
    const char *s = p;
    switch (*p) {
    case '"': {
        const char *q = js_string(p + 1, e, &v->escaped);
        if (!q) return NULL;
        v->kind = 's'; v->p = p + 1; v->n = (size_t)(q - p - 1);
        return q + 1;
    }
    case '{':
        p = js_object(p, e, depth, NULL, 0, NULL);
        v->kind = 'o';
        break;
    case '[': {
        jval tmp;
        if (depth > JS_MAX_DEPTH) return NULL;
        p = js_ws(p + 1, e);
        if (p < e && *p == ']') { p++; v->kind = 'a'; break; }
        for (;;) {
            p = js_value(p, e, &tmp, depth + 1);
            if (!p) return NULL;
            p = js_ws(p, e);
            if (p < e && *p == ',') { p++; continue; }
            if (p < e && *p == ']') { p++; break; }
            return NULL;
        }
        v->kind = 'a';
        break;
    }
    case 't':
        if (e - p < 4 || memcmp(p, "true", 4)) return NULL;
        p += 4; v->kind = 't'; break;
    case 'f':
        if (e - p < 5 || memcmp(p, "false", 5)) return NULL;
        p += 5; v->kind = 'f'; break;
    case 'n':
        if (e - p < 4 || memcmp(p, "null", 4)) return NULL;
        p += 4; v->kind = 'z'; break;
    default:
        p = js_number(p, e, &v->integer);
        v->kind = 'n';
        break;
    }
    if (!p) return NULL;
    v->p = s; v->n = (size_t)(p - s);
    return p;
}

/* Validates buf[0..n) as one JSON object (surrounding white space allowed)
 * and fills out[i] for each wanted top-level key.  Returns 0 or -1. */
static int json_object_get(const char *buf, size_t n, const char *const *keys,
                           int nkeys, jval *out)
{
    const char *e = buf + n;
    for (int i = 0; i < nkeys; i++) out[i].kind = 0;
    const char *p = js_ws(buf, e);
    if (p >= e || *p != '{') return -1;
    p = js_object(p, e, 0, keys, nkeys, out);
    if (!p) return -1;
    return js_ws(p, e) == e ? 0 : -1;
}

/* Decodes a string span into out (which needs v->n bytes: decoding never
 * grows it).  \u escapes become UTF-8; a lone surrogate becomes U+FFFD.
 * Returns the decoded length. */
static size_t json_unescape(const jval *v, char *out)
{
    const char *p = v->p, *e = v->p + v->n;
    char *o = out;
    if (!v->escaped) { memcpy(out, p, v->n); return v->n; }
    while (p < e) {
        if (*p != '\\') { *o++ = *p++; continue; }
        p++;
        char c = *p++;
        unsigned cp;
        switch (c) {
        case 'b': *o++ = '\b'; continue;
        case 'f': *o++ = '\f'; continue;
        case 'n': *o++ = '\n'; continue;
        case 'r': *o++ = '\r'; continue;
        case 't': *o++ = '\t'; continue;
        case 'u':
            cp = (unsigned)(js_hex(p[0]) << 12 | js_hex(p[1]) << 8 |
                            js_hex(p[2]) << 4 | js_hex(p[3]));
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && e - p >= 6 && p[0] == '\\' &&
                p[1] == 'u') {
                unsigned lo = (unsigned)(js_hex(p[2]) << 12 | js_hex(p[3]) << 8 |
                                         js_hex(p[4]) << 4 | js_hex(p[5]));
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
            if (cp < 0x80) *o++ = (char)cp;
            else if (cp < 0x800) {
                *o++ = (char)(0xC0 | cp >> 6); *o++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | cp >> 12);
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | cp >> 18);
                *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            continue;
        default: *o++ = c; continue;   /* \" \\ \/ */
        }
    }
    return (size_t)(o - out);
}

/* True when v is a string equal to the C string s (after unescaping). */
static int json_str_eq(const jval *v, const char *s)
{
    size_t n = strlen(s);
    if (v->kind != 's') return 0;
    if (!v->escaped) return v->n == n && memcmp(v->p, s, n) == 0;
    char tmp[256];
    if (v->n > sizeof tmp) return 0;
    size_t m = json_unescape(v, tmp);
    return m == n && memcmp(tmp, s, n) == 0;
}

#endif
