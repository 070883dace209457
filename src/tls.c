/*
 * tls.c -- HTTPS through OpenSSL 3: the server's TLS context, and
 * non-blocking read/write on a connection's SSL object.
 *
 * The context is built when a server starts (and so again in the new process
 * of every graceful restart, which is how renewed certificate files go live):
 * TLS 1.2 and 1.3 only, forward-secret AEAD ciphers for 1.2, server cipher
 * preference, ALPN "http/1.1", no renegotiation, no compression. Session
 * tickets are sealed with grace's own key ring (tickets.c), which the next
 * process of a restart inherits, so sessions resume across restarts and
 * across a master's children. Every failure is reported with the file and
 * OpenSSL's reason, once, by the caller (SPEC S2; issue "HTTPS").
 *
 * Connections are non-blocking: grace__tls_read/write return -EAGAIN on
 * SSL_ERROR_WANT_READ/WANT_WRITE and the event loop comes back on the next
 * edge (connections are registered for both directions). The handshake runs
 * inside the first reads, so a slow handshake holds no thread. OpenSSL reads
 * ahead; grace__tls_read says when the socket and OpenSSL's buffer are both
 * drained (a socket BIO callback), so no read is spent on an EAGAIN.
 */
#include "internal.h"
#include "tickets.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Refuse encrypted keys at once, with a clear message, rather than prompt on
 * the terminal (OpenSSL's default). */
static int no_password(char *buf, int size, int rwflag, void *user)
{
    (void)buf, (void)size, (void)rwflag;
    *(bool *)user = true;
    return -1;
}

static void openssl_reason(char *out, size_t cap)
{
    unsigned long e = ERR_peek_error(); /* the first error is the one that says why */
    if (e == 0) {
        snprintf(out, cap, "unknown OpenSSL error");
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(out, cap, "%s", r ? r : "unknown OpenSSL error");
    }
    ERR_clear_error();
}

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned int in_len, void *arg)
{
    (void)ssl, (void)arg;
    static const unsigned char h11[] = "\x08http/1.1";
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, out_len, h11, sizeof h11 - 1, in, in_len) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    /* A client offering only h2 still gets HTTP/1.1 without ALPN. */
    return SSL_TLSEXT_ERR_NOACK;
}

int grace__tls_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *why, size_t why_len)
{
    char reason[256];
    bool encrypted = false;
    /* OpenSSL says only "system lib" for a file it cannot open. */
    const char *files[2][2] = {{"certificate", cert}, {"private key", key}};
    for (int i = 0; i < 2; i++) {
        if (access(files[i][1], R_OK) != 0) {
            snprintf(why, why_len, "cannot read %s %s: %s", files[i][0], files[i][1],
                     strerror(errno));
            return GRACE_ETLS;
        }
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        openssl_reason(reason, sizeof reason);
        snprintf(why, why_len, "cannot create a TLS context: %s", reason);
        return GRACE_ETLS;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    /* A client that closes without close_notify has ended its side, not
     * attacked us: HTTP framing says whether anything was cut. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20");
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read ahead, as nginx does: a read(2) takes what the socket holds, not
     * one record's 5-byte header and then its body, so a request costs one
     * read instead of two (and a third that says EAGAIN), and the client's
     * last handshake flight (change cipher spec, Finished, its request) one
     * instead of six. Records read ahead are no hazard to edge triggering:
     * a TLS connection reads on until the socket is drained and OpenSSL
     * holds no record unread (grace__tls_read's *drained). */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_password);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &encrypted);

    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        openssl_reason(reason, sizeof reason);
        snprintf(why, why_len, "cannot load certificate %s: %s", cert, reason);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        bool mismatch = ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH;
        openssl_reason(reason, sizeof reason);
        if (mismatch)
            snprintf(why, why_len, "private key %s does not match certificate %s", key, cert);
        else if (encrypted)
            snprintf(why, why_len,
                     "private key %s is encrypted: grace needs an unencrypted key "
                     "(decrypt it with `openssl pkey -in KEY -out KEY.plain`)",
                     key);
        else
            snprintf(why, why_len, "cannot load private key %s: %s", key, reason);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        openssl_reason(reason, sizeof reason);
        snprintf(why, why_len, "private key %s does not match certificate %s: %s", key, cert,
                 reason);
        goto fail;
    }
    if (grace__tickets_attach(ctx, why, why_len) < 0)
        goto fail;
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return GRACE_ETLS;
}

void grace__tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

/* The socket BIO's callback: after each read(2) under SSL_read, whether it
 * took all the socket held (a short read, or EAGAIN), into the bool that
 * grace__tls_read points the callback's argument at. */
static long on_socket_read(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
                           int ret, size_t *processed)
{
    (void)argp, (void)argi, (void)argl;
    bool *drained = (bool *)BIO_get_callback_arg(b);
    if (oper == (BIO_CB_READ | BIO_CB_RETURN) && drained != NULL)
        *drained = ret > 0 ? processed != NULL && *processed < len : BIO_should_retry(b);
    return ret;
}

SSL *grace__tls_new(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    BIO_set_callback_ex(SSL_get_rbio(ssl), on_socket_read);
    /* No Nagle on TLS, from the start (as nginx does): OpenSSL writes each
     * handshake flight at once, but TLS 1.3's session tickets go out one
     * write each after the handshake, and the first answer would wait
     * behind them, unacknowledged, for the client's delayed ACK (40 ms).
     * (A plain connection turns Nagle off at its second answer: conn.c.) */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return ssl;
}

void grace__tls_free(SSL *ssl)
{
    SSL_free(ssl);
}

/* Map an SSL result to grace's I/O convention. */
static ssize_t io_result(SSL *ssl, int r)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify: a clean end */
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno == EAGAIN ? -EAGAIN : (errno ? -errno : -ECONNRESET);
    default:
        /* Protocol error (bad handshake, plaintext on the TLS port, ...):
         * the connection is over; the queue must not leak into the next
         * connection's error report on this thread. */
        ERR_clear_error();
        return -EPROTO;
    }
}

ssize_t grace__tls_read(SSL *ssl, char *buf, size_t len, bool *drained)
{
    size_t n = 0;
    bool socket_drained = false; /* (stays so for an answer from records read before) */
    BIO *rbio = SSL_get_rbio(ssl);
    BIO_set_callback_arg(rbio, (char *)&socket_drained);
    int r = SSL_read_ex(ssl, buf, len, &n);
    BIO_set_callback_arg(rbio, NULL);
    *drained = socket_drained && !SSL_has_pending(ssl);
    return r == 1 ? (ssize_t)n : io_result(ssl, r);
}

ssize_t grace__tls_write(SSL *ssl, const char *buf, size_t len)
{
    size_t n = 0;
    int r = SSL_write_ex(ssl, buf, len, &n);
    return r == 1 ? (ssize_t)n : io_result(ssl, r);
}

void grace__tls_close_notify(SSL *ssl)
{
    /* Best effort and non-blocking: one try, whatever the socket says. */
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    ERR_clear_error();
}

bool grace__tls_handshake_done(SSL *ssl)
{
    return SSL_is_init_finished(ssl);
}
