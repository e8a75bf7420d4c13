/*
 * h2grpc: a gRPC load generator in the manner of h2load, but each call sends
 * its own prepared request body.
 *
 * Why: the bench shares 2 cores between load generator, server and
 * PostgreSQL, so the load generator must cost next to nothing. h2load is that
 * cheap but can send only one fixed body; the Python grpc.aio client can send
 * distinct requests (distinct signed tokens) but costs ~150 us of CPU a call.
 * This is plaintext HTTP/2 (h2c, prior knowledge) over nghttp2's client
 * session, single-threaded, epoll, with a fixed pool of call slots so the
 * only per-call allocations are nghttp2's own.
 *
 * Build: gcc -O2 -Wall -Wextra -o h2grpc bench/h2grpc/h2grpc.c -lnghttp2
 * See README.md beside this file for the flags and the output.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

enum { EXIT_OK = 0, EXIT_ARGS = 2, EXIT_EXHAUSTED = 3, EXIT_CONN = 4 };

/* Big windows so that flow control never throttles the run. */
#define WINDOW_SIZE (16 * 1024 * 1024)
/* Time allowed to connect and receive the server's SETTINGS. */
#define SETUP_NS 2000000000LL
#define OUTBUF_SIZE (256 * 1024)
#define INBUF_SIZE (256 * 1024)
#define MAX_PREFIX 64
#define MAX_KINDS 64
#define ERRTEXT 256

/* One prepared request: a whole gRPC length-prefixed message. */
struct request {
    const uint8_t *data;
    uint32_t len;
};

/* One call slot. A connection owns as many as it may have streams open, so
 * starting a call never allocates. */
struct call {
    int64_t t0;
    const uint8_t *req;
    uint32_t req_len, req_off;
    int http_status;  /* 0 until :status arrives */
    int grpc_status;  /* -1 until grpc-status arrives */
    /* Response message framing, parsed as DATA arrives in any chunking. */
    uint8_t hdr[5];
    uint8_t hdr_got;
    uint8_t prefix_bad;
    uint32_t msg_left;
    uint32_t msgs;       /* complete messages received */
    uint32_t prefix_got; /* bytes of the expected prefix compared so far */
    uint8_t got[MAX_PREFIX]; /* those bytes, to show a mismatch */
    char grpc_message[ERRTEXT]; /* only kept while no first_error is known */
};

struct conn {
    int idx, fd;
    nghttp2_session *s;
    struct call *calls;
    int *free_slots;
    int nfree, cap, active;
    int connected, got_settings, epoll_out;
    size_t out_len, out_off;
    uint8_t out[OUTBUF_SIZE];
    char lib_error[160]; /* nghttp2's last error text, for failure messages */
};

/* ---- configuration ---- */
static const char *opt_host, *opt_path, *opt_file, *opt_authority;
static int opt_port = -1, opt_conns = 1, opt_inflight = 64, opt_cycle;
static double opt_warmup = 1.0, opt_duration = 5.0;
static uint8_t prefix[MAX_PREFIX];
static size_t prefix_len;
static nghttp2_nv hdrs[6];

/* ---- run state ---- */
static struct request *reqs;
static size_t nreqs, next_req;
static uint64_t sent;
static int exhausted, failed, running;
static char failure[512];
static int64_t t_start, t_ws, t_we; /* run start, window start, window end (ns) */
static int epfd;
static struct conn *conns;

/* ---- results (window only) ---- */
static uint64_t n_calls, n_errors;
static double *lat;
static size_t nlat, lat_cap;
static struct { char name[24]; uint64_t count; } kinds[MAX_KINDS];
static int nkinds;
static char first_error[ERRTEXT];
static int have_first_error;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Record the first fatal problem; the main loop stops on `failed`. */
static void fail(const char *fmt, ...) {
    if (failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
    failed = 1;
}

/* grpc-message is percent-encoded on the wire. */
static void percent_decode(char *dst, size_t cap, const uint8_t *src, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        if (src[i] == '%' && i + 2 < len) {
            char hex[3] = {(char)src[i + 1], (char)src[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == 0) {
                dst[o++] = (char)v;
                i += 2;
                continue;
            }
        }
        dst[o++] = (char)src[i];
    }
    dst[o] = 0;
}

static void count_kind(const char *name) {
    for (;;) {
        for (int i = 0; i < nkinds; i++)
            if (strcmp(kinds[i].name, name) == 0) {
                kinds[i].count++;
                return;
            }
        /* The last slot is kept for "other", so a full table still counts. */
        if (nkinds < MAX_KINDS - 1 || strcmp(name, "other") == 0)
            break;
        name = "other";
    }
    snprintf(kinds[nkinds].name, sizeof kinds[nkinds].name, "%s", name);
    kinds[nkinds++].count = 1;
}

static void push_latency(double ms) {
    if (nlat == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 65536;
        double *p = realloc(lat, lat_cap * sizeof *p);
        if (!p) {
            fail("out of memory for latencies");
            return;
        }
        lat = p;
    }
    lat[nlat++] = ms;
}

/* A call ended: judge it, and count it if it ended inside the window. */
static void finish_call(struct call *c, uint32_t error_code) {
    int64_t t1 = now_ns();
    /* Once the run has failed (say GOAWAY), the streams nghttp2 closes in
     * its wake are not the server's answers: leave them out. */
    if (!running || failed || t1 < t_ws || t1 > t_we)
        return;
    char kind[24] = "";
    if (error_code != NGHTTP2_NO_ERROR)
        snprintf(kind, sizeof kind, "reset");
    else if (c->http_status != 200)
        snprintf(kind, sizeof kind, "http_%d", c->http_status);
    else if (c->grpc_status < 0)
        snprintf(kind, sizeof kind, "no_status");
    else if (c->grpc_status != 0)
        snprintf(kind, sizeof kind, "grpc_%d", c->grpc_status);
    else if (c->msgs == 0)
        snprintf(kind, sizeof kind, "no_message");
    else if (c->prefix_bad)
        snprintf(kind, sizeof kind, "prefix");
    n_calls++;
    if (!kind[0]) {
        push_latency((double)(t1 - c->t0) / 1e6);
        return;
    }
    n_errors++;
    count_kind(kind);
    if (!have_first_error && c->grpc_message[0]) {
        snprintf(first_error, sizeof first_error, "%s", c->grpc_message);
        have_first_error = 1;
    } else if (!first_error[0]) {
        /* No grpc-message yet: say what the error was, until one comes. */
        if (error_code != NGHTTP2_NO_ERROR)
            snprintf(first_error, sizeof first_error, "stream reset: %s", nghttp2_http2_strerror(error_code));
        else if (c->http_status != 200)
            snprintf(first_error, sizeof first_error, "HTTP status %d", c->http_status);
        else if (c->grpc_status < 0)
            snprintf(first_error, sizeof first_error, "no grpc-status in the response");
        else if (c->grpc_status != 0)
            snprintf(first_error, sizeof first_error, "grpc-status %d without grpc-message", c->grpc_status);
        else if (c->msgs == 0)
            snprintf(first_error, sizeof first_error, "grpc-status 0 but no response message");
        else {
            char got[2 * MAX_PREFIX + 1] = "", want[2 * MAX_PREFIX + 1] = "";
            for (size_t i = 0; i < prefix_len; i++) {
                if (i < c->prefix_got)
                    sprintf(got + 2 * i, "%02x", c->got[i]);
                sprintf(want + 2 * i, "%02x", prefix[i]);
            }
            snprintf(first_error, sizeof first_error, "first response message starts '%s'%s, expected '%s'", got,
                     c->prefix_got < prefix_len ? " (and ends there)" : "", want);
        }
    }
}

/* ---- nghttp2 callbacks ---- */

static ssize_t send_cb(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud) {
    (void)s, (void)flags;
    struct conn *cn = ud;
    size_t space = OUTBUF_SIZE - cn->out_len;
    if (space == 0)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (len > space)
        len = space;
    memcpy(cn->out + cn->out_len, data, len);
    cn->out_len += len;
    return (ssize_t)len;
}

static ssize_t read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud) {
    (void)s, (void)sid, (void)ud;
    struct call *c = src->ptr;
    size_t n = c->req_len - c->req_off;
    if (n > len)
        n = len;
    memcpy(buf, c->req + c->req_off, n);
    c->req_off += (uint32_t)n;
    if (c->req_off == c->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* A small decimal code; anything else is taken as gRPC's UNKNOWN (2). */
static int parse_code(const uint8_t *v, size_t len) {
    int n = 0;
    if (len == 0 || len > 4)
        return 2;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return 2;
        n = n * 10 + (v[i] - '0');
    }
    return n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud) {
    (void)flags, (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!c)
        return 0;
    /* Both the first HEADERS block and the trailers land here: a
     * trailers-only answer carries grpc-status in the first block. */
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        c->http_status = parse_code(value, valuelen); /* nghttp2 has checked it is 3 digits */
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        c->grpc_status = parse_code(value, valuelen);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0 && !have_first_error) {
        percent_decode(c->grpc_message, sizeof c->grpc_message, value, valuelen);
    }
    return 0;
}

static void message_done(struct call *c) {
    /* A first message shorter than the expected prefix does not match it. */
    if (c->msgs == 0 && c->prefix_got < prefix_len)
        c->prefix_bad = 1;
    c->msgs++;
    c->hdr_got = 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len, void *ud) {
    (void)flags, (void)ud;
    struct call *c = nghttp2_session_get_stream_user_data(s, sid);
    if (!c)
        return 0;
    while (len) {
        if (c->hdr_got < 5) {
            size_t n = 5 - c->hdr_got;
            if (n > len)
                n = len;
            memcpy(c->hdr + c->hdr_got, data, n);
            c->hdr_got += (uint8_t)n;
            data += n, len -= n;
            if (c->hdr_got == 5) {
                c->msg_left = (uint32_t)c->hdr[1] << 24 | (uint32_t)c->hdr[2] << 16 |
                              (uint32_t)c->hdr[3] << 8 | c->hdr[4];
                if (c->msg_left == 0)
                    message_done(c);
            }
            continue;
        }
        size_t n = c->msg_left < len ? c->msg_left : len;
        if (c->msgs == 0 && c->prefix_got < prefix_len) {
            size_t k = prefix_len - c->prefix_got;
            if (k > n)
                k = n;
            memcpy(c->got + c->prefix_got, data, k);
            if (memcmp(data, prefix + c->prefix_got, k) != 0)
                c->prefix_bad = 1;
            c->prefix_got += (uint32_t)k;
        }
        c->msg_left -= (uint32_t)n;
        data += n, len -= n;
        if (c->msg_left == 0)
            message_done(c);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud) {
    struct conn *cn = ud;
    struct call *c = nghttp2_session_get_stream_user_data(s, sid);
    if (!c)
        return 0;
    finish_call(c, error_code);
    cn->free_slots[cn->nfree++] = (int)(c - cn->calls);
    cn->active--;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)s;
    struct conn *cn = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        cn->got_settings = 1;
    } else if (f->hd.type == NGHTTP2_GOAWAY) {
        /* Any GOAWAY ends the run: the calls after it would not be comparable. */
        char debug[128];
        size_t n = f->goaway.opaque_data_len < sizeof debug - 1 ? f->goaway.opaque_data_len : sizeof debug - 1;
        memcpy(debug, f->goaway.opaque_data, n);
        debug[n] = 0;
        fail("connection %d: server sent GOAWAY (%s, last stream %d)%s%s", cn->idx,
             nghttp2_http2_strerror(f->goaway.error_code), f->goaway.last_stream_id, n ? ": " : "", debug);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud) {
    (void)s;
    struct conn *cn = ud;
    if (f->hd.type == NGHTTP2_GOAWAY)
        fail("connection %d: connection error, sent GOAWAY (%s)%s%s", cn->idx,
             nghttp2_http2_strerror(f->goaway.error_code), cn->lib_error[0] ? ": " : "", cn->lib_error);
    return 0;
}

static int on_error(nghttp2_session *s, int code, const char *msg, size_t len, void *ud) {
    (void)s, (void)code;
    struct conn *cn = ud;
    snprintf(cn->lib_error, sizeof cn->lib_error, "%.*s", (int)len, msg);
    return 0;
}

/* ---- connection I/O ---- */

static void want_out(struct conn *cn, int on) {
    if (cn->epoll_out == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = cn};
    epoll_ctl(epfd, EPOLL_CTL_MOD, cn->fd, &ev);
    cn->epoll_out = on;
}

/* Let nghttp2 fill the output buffer and write it, batching many frames into
 * one send(): at 64 streams a read of responses usually yields one write. */
static void flush(struct conn *cn) {
    if (!cn->connected)
        return;
    for (;;) {
        int rv = nghttp2_session_send(cn->s);
        if (rv != 0) {
            fail("connection %d: nghttp2_session_send: %s", cn->idx, nghttp2_strerror(rv));
            return;
        }
        if (cn->out_off == cn->out_len) {
            cn->out_off = cn->out_len = 0;
            want_out(cn, 0);
            return;
        }
        ssize_t w = send(cn->fd, cn->out + cn->out_off, cn->out_len - cn->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_out(cn, 1);
                return;
            }
            fail("connection %d: send: %s", cn->idx, strerror(errno));
            return;
        }
        cn->out_off += (size_t)w;
        if (cn->out_off < cn->out_len) { /* the socket buffer is full */
            want_out(cn, 1);
            return;
        }
        cn->out_off = cn->out_len = 0;
    }
}

static void do_read(struct conn *cn) {
    static uint8_t buf[INBUF_SIZE];
    for (;;) {
        ssize_t n = recv(cn->fd, buf, sizeof buf, 0);
        if (n == 0) {
            fail("connection %d: server closed the connection", cn->idx);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                fail("connection %d: recv: %s", cn->idx, strerror(errno));
            return;
        }
        ssize_t rv = nghttp2_session_mem_recv(cn->s, buf, (size_t)n);
        if (rv < 0) {
            fail("connection %d: %s%s%s", cn->idx, nghttp2_strerror((int)rv), cn->lib_error[0] ? ": " : "",
                 cn->lib_error);
            return;
        }
        if ((size_t)n < sizeof buf) /* drained; level-triggered epoll brings us back */
            return;
    }
}

static const struct request *take_request(void) {
    if (next_req == nreqs) {
        if (!opt_cycle) {
            exhausted = 1;
            return NULL;
        }
        next_req = 0;
    }
    return &reqs[next_req++];
}

/* Keep the connection's share of calls in flight, never above the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2 would queue them, and their
 * latency would include the wait). */
static void refill(struct conn *cn) {
    uint32_t limit = nghttp2_session_get_remote_settings(cn->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    while (cn->active < cn->cap && (uint32_t)cn->active < limit && !exhausted && !failed) {
        const struct request *r = take_request();
        if (!r)
            return;
        struct call *c = &cn->calls[cn->free_slots[--cn->nfree]];
        c->req = r->data;
        c->req_len = r->len;
        c->req_off = 0;
        c->http_status = 0;
        c->grpc_status = -1;
        c->hdr_got = 0;
        c->prefix_bad = 0;
        c->msg_left = 0;
        c->msgs = 0;
        c->prefix_got = 0;
        c->grpc_message[0] = 0;
        nghttp2_data_provider prd = {.source.ptr = c, .read_callback = read_body};
        c->t0 = now_ns();
        int32_t sid = nghttp2_submit_request(cn->s, NULL, hdrs, sizeof hdrs / sizeof hdrs[0], &prd, c);
        if (sid < 0) {
            cn->nfree++;
            fail("connection %d: nghttp2_submit_request: %s", cn->idx, nghttp2_strerror(sid));
            return;
        }
        cn->active++;
        sent++;
    }
}

/* ---- setup ---- */

static void usage(const char *why) {
    if (why)
        fprintf(stderr, "h2grpc: %s\n", why);
    fprintf(stderr,
            "usage: h2grpc --host HOST --port PORT --path /pkg.Service/Method --requests FILE\n"
            "              [--connections 1] [--in-flight 64] [--warmup 1.0] [--duration 5.0]\n"
            "              [--cycle] [--expect-prefix HEX] [--authority HOST:PORT]\n");
    exit(EXIT_ARGS);
}

static double parse_double(const char *s, const char *flag) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || v != v) {
        fprintf(stderr, "h2grpc: %s: not a number: %s\n", flag, s);
        exit(EXIT_ARGS);
    }
    return v;
}

static int parse_int(const char *s, const char *flag) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < 0 || v > 1000000000) {
        fprintf(stderr, "h2grpc: %s: not a count: %s\n", flag, s);
        exit(EXIT_ARGS);
    }
    return (int)v;
}

static void parse_prefix(const char *hex) {
    size_t n = strlen(hex);
    if (n == 0 || n % 2 || n / 2 > MAX_PREFIX)
        usage("--expect-prefix: an even number of hex digits, at most 128");
    for (size_t i = 0; i < n / 2; i++) {
        char pair[3] = {hex[2 * i], hex[2 * i + 1], 0}, *end;
        long v = strtol(pair, &end, 16);
        if (*end != 0 || pair[0] == '-' || pair[0] == '+' || pair[0] == ' ')
            usage("--expect-prefix: not hex");
        prefix[i] = (uint8_t)v;
    }
    prefix_len = n / 2;
}

static void parse_args(int argc, char **argv) {
    static const struct option longopts[] = {
        {"host", required_argument, 0, 'h'},        {"port", required_argument, 0, 'p'},
        {"path", required_argument, 0, 'P'},        {"requests", required_argument, 0, 'r'},
        {"connections", required_argument, 0, 'c'}, {"in-flight", required_argument, 0, 'm'},
        {"warmup", required_argument, 0, 'w'},      {"duration", required_argument, 0, 'd'},
        {"cycle", no_argument, 0, 'C'},             {"expect-prefix", required_argument, 0, 'x'},
        {"authority", required_argument, 0, 'a'},   {"help", no_argument, 0, '?'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = parse_int(optarg, "--port"); break;
        case 'P': opt_path = optarg; break;
        case 'r': opt_file = optarg; break;
        case 'c': opt_conns = parse_int(optarg, "--connections"); break;
        case 'm': opt_inflight = parse_int(optarg, "--in-flight"); break;
        case 'w': opt_warmup = parse_double(optarg, "--warmup"); break;
        case 'd': opt_duration = parse_double(optarg, "--duration"); break;
        case 'C': opt_cycle = 1; break;
        case 'x': parse_prefix(optarg); break;
        case 'a': opt_authority = optarg; break;
        default: usage(NULL);
        }
    }
    if (optind != argc)
        usage("unexpected argument");
    if (!opt_host || !opt_path || !opt_file || opt_port < 0)
        usage("--host, --port, --path and --requests are required");
    if (opt_port < 1 || opt_port > 65535)
        usage("--port: 1 to 65535");
    if (opt_path[0] != '/')
        usage("--path must start with /");
    if (opt_conns < 1 || opt_conns > 1024)
        usage("--connections: 1 to 1024");
    if (opt_inflight < opt_conns)
        usage("--in-flight must be at least --connections");
    if (opt_warmup < 0 || opt_warmup > 86400 || opt_duration <= 0 || opt_duration > 86400)
        usage("--warmup must be >= 0 and --duration > 0");
}

/* The whole file in memory, split into its length-prefixed messages. */
static void load_requests(void) {
    FILE *f = fopen(opt_file, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "h2grpc: %s: %s\n", opt_file, strerror(errno));
        exit(EXIT_ARGS);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf || fread(buf, 1, size, f) != size) {
        fprintf(stderr, "h2grpc: %s: cannot read\n", opt_file);
        exit(EXIT_ARGS);
    }
    fclose(f);
    size_t cap = 1024;
    reqs = malloc(cap * sizeof *reqs);
    for (size_t off = 0; off < size;) {
        if (size - off < 5) {
            fprintf(stderr, "h2grpc: %s: truncated message prefix at byte %zu\n", opt_file, off);
            exit(EXIT_ARGS);
        }
        if (buf[off] != 0) {
            fprintf(stderr, "h2grpc: %s: compressed flag %u at byte %zu (must be 0)\n", opt_file, buf[off], off);
            exit(EXIT_ARGS);
        }
        uint32_t len = (uint32_t)buf[off + 1] << 24 | (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 8 |
                       buf[off + 4];
        if (len > size - off - 5) {
            fprintf(stderr, "h2grpc: %s: message at byte %zu claims %u bytes, only %zu remain\n", opt_file, off,
                    len, size - off - 5);
            exit(EXIT_ARGS);
        }
        if (nreqs == cap) {
            cap *= 2;
            reqs = realloc(reqs, cap * sizeof *reqs);
        }
        if (!reqs) {
            fprintf(stderr, "h2grpc: out of memory\n");
            exit(EXIT_ARGS);
        }
        reqs[nreqs].data = buf + off;
        reqs[nreqs++].len = len + 5;
        off += 5 + (size_t)len;
    }
    if (nreqs == 0) {
        fprintf(stderr, "h2grpc: %s: no messages\n", opt_file);
        exit(EXIT_ARGS);
    }
}

static void build_headers(void) {
    static char authority[300];
    if (!opt_authority) {
        snprintf(authority, sizeof authority, strchr(opt_host, ':') ? "[%s]:%d" : "%s:%d", opt_host, opt_port);
        opt_authority = authority;
    }
    const char *nv[6][2] = {
        {":method", "POST"},        {":scheme", "http"},         {":path", opt_path},
        {":authority", opt_authority}, {"content-type", "application/grpc"}, {"te", "trailers"},
    };
    for (int i = 0; i < 6; i++) {
        /* The strings live as long as the program: nghttp2 need not copy them. */
        hdrs[i] = (nghttp2_nv){(uint8_t *)nv[i][0], (uint8_t *)nv[i][1], strlen(nv[i][0]), strlen(nv[i][1]),
                               NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    }
}

static void open_connections(const struct addrinfo *ai, nghttp2_session_callbacks *cbs) {
    conns = calloc((size_t)opt_conns, sizeof *conns);
    if (!conns) {
        fprintf(stderr, "h2grpc: out of memory\n");
        exit(EXIT_CONN);
    }
    for (int i = 0; i < opt_conns; i++) {
        struct conn *cn = &conns[i];
        cn->idx = i;
        /* Spread --in-flight evenly; the first connections take the remainder. */
        cn->cap = opt_inflight / opt_conns + (i < opt_inflight % opt_conns);
        cn->calls = calloc((size_t)cn->cap, sizeof *cn->calls);
        cn->free_slots = malloc((size_t)cn->cap * sizeof *cn->free_slots);
        if (!cn->calls || !cn->free_slots) {
            fprintf(stderr, "h2grpc: out of memory\n");
            exit(EXIT_CONN);
        }
        for (int k = 0; k < cn->cap; k++)
            cn->free_slots[k] = cn->cap - 1 - k;
        cn->nfree = cn->cap;

        cn->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (cn->fd < 0) {
            fail("socket: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(cn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(cn->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            fail("cannot connect to %s:%d: %s", opt_host, opt_port, strerror(errno));
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = cn};
        cn->epoll_out = 1;
        epoll_ctl(epfd, EPOLL_CTL_ADD, cn->fd, &ev);

        nghttp2_session_client_new(&cn->s, cbs, cn);
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_SIZE},
        };
        nghttp2_submit_settings(cn->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
        nghttp2_session_set_local_window_size(cn->s, NGHTTP2_FLAG_NONE, 0, WINDOW_SIZE);
    }
}

static void on_connected(struct conn *cn) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(cn->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        fail("cannot connect to %s:%d: %s", opt_host, opt_port, strerror(err));
        return;
    }
    cn->connected = 1;
}

/* ---- output ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank, as bench/measure.py's percentile. */
static double percentile(double q) {
    if (!nlat)
        return 0;
    long long qm = (long long)(q * 1000000 + 0.5);
    long long rank = (qm * (long long)nlat + 999999) / 1000000 - 1;
    if (rank < 0)
        rank = 0;
    if (rank >= (long long)nlat)
        rank = (long long)nlat - 1;
    return lat[rank];
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void report(int64_t t_end) {
    double window = 0;
    if (running) {
        int64_t end = t_end < t_we ? t_end : t_we;
        if (end > t_ws)
            window = (double)(end - t_ws) / 1e9;
    }
    qsort(lat, nlat, sizeof *lat, cmp_double);
    printf("{\"calls\": %llu, \"errors\": %llu, \"error_kinds\": {", (unsigned long long)n_calls,
           (unsigned long long)n_errors);
    for (int i = 0; i < nkinds; i++) {
        printf(i ? ", " : "");
        json_string(kinds[i].name);
        printf(": %llu", (unsigned long long)kinds[i].count);
    }
    printf("}, \"first_error\": ");
    json_string(first_error);
    printf(", \"window_s\": %.3f, \"rate\": %.1f, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
           "\"sent\": %llu, \"exhausted\": %s, \"connections\": %d, \"in_flight\": %d, \"failure\": ",
           window, window > 0 ? (double)(n_calls - n_errors) / window : 0.0, percentile(0.50), percentile(0.99),
           nlat ? lat[nlat - 1] : 0.0, (unsigned long long)sent, exhausted ? "true" : "false", opt_conns,
           opt_inflight);
    json_string(failure);
    printf("}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    load_requests();
    build_headers();

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    char port[8];
    snprintf(port, sizeof port, "%d", opt_port);
    int gai = getaddrinfo(opt_host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "h2grpc: cannot resolve %s: %s\n", opt_host, gai_strerror(gai));
        return EXIT_CONN;
    }

    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_send_callback(cbs, send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_error);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    /* Until every connection is up and has the server's SETTINGS (so its
     * stream limit is known), the deadline is the setup deadline. */
    int64_t deadline = now_ns() + SETUP_NS;
    open_connections(ai, cbs);
    freeaddrinfo(ai);

    struct epoll_event evs[64];
    int64_t now = now_ns();
    while (!failed && !exhausted) {
        if (!running) {
            int ready = 1;
            for (int i = 0; i < opt_conns; i++)
                ready &= conns[i].got_settings;
            if (ready) {
                running = 1;
                t_start = now;
                t_ws = t_start + (int64_t)(opt_warmup * 1e9);
                t_we = t_ws + (int64_t)(opt_duration * 1e9);
                deadline = t_we;
            }
        }
        /* After the window nothing more is sent; outstanding calls are dropped. */
        if (now >= deadline)
            break;
        if (running) {
            for (int i = 0; i < opt_conns; i++)
                refill(&conns[i]);
            if (exhausted || failed)
                break;
        }
        for (int i = 0; i < opt_conns; i++)
            flush(&conns[i]);
        int timeout = (int)((deadline - now + 999999) / 1000000);
        int n = epoll_wait(epfd, evs, sizeof evs / sizeof evs[0], timeout);
        if (n < 0 && errno != EINTR) {
            fail("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !failed; i++) {
            struct conn *cn = evs[i].data.ptr;
            if (!cn->connected) {
                on_connected(cn);
                if (failed)
                    break;
            }
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                do_read(cn);
            if (!failed && (evs[i].events & EPOLLOUT))
                flush(cn);
        }
        for (int i = 0; i < opt_conns && !failed; i++)
            if (!nghttp2_session_want_read(conns[i].s) && !nghttp2_session_want_write(conns[i].s))
                fail("connection %d: session ended%s%s", i, conns[i].lib_error[0] ? ": " : "", conns[i].lib_error);
        now = now_ns();
    }
    if (!running && !failed && !exhausted)
        fail("timed out: no connection and SETTINGS from %s:%d within %.0f s", opt_host, opt_port, SETUP_NS / 1e9);

    report(now_ns());
    if (failed) {
        fprintf(stderr, "h2grpc: %s\n", failure);
        return EXIT_CONN;
    }
    if (exhausted) {
        fprintf(stderr, "h2grpc: ran out of requests after %llu calls (%zu in %s); use more, or --cycle\n",
                (unsigned long long)sent, nreqs, opt_file);
        return EXIT_EXHAUSTED;
    }
    return EXIT_OK;
}
