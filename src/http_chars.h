/*
 * http_chars.h -- byte classes of RFC 9110/9112 shared by the request parser
 * (http1.c) and the chunked decoder (chunked.c). Private to those files.
 */
#ifndef GRACE_HTTP_CHARS_H
#define GRACE_HTTP_CHARS_H

#include <stdbool.h>

/* ---- Character classes ----------------------------------------------------
 * One table lookup per byte answers every "may this byte appear here"
 * question. The table is computed by the compiler from the RFC rules below,
 * which are easier to check than 256 hand-written entries. */
enum {
    C_TCHAR = 1 << 0,  /* token, RFC 9110 5.6.2 */
    C_TARGET = 1 << 1, /* request-target byte: visible ASCII 0x21-0x7E */
    C_VALUE = 1 << 2,  /* field-value byte: VCHAR, obs-text, SP, HTAB */
    C_HEX = 1 << 3,    /* HEXDIG */
    C_HOST = 1 << 4,   /* reg-name byte without '%': unreserved / sub-delims */
    C_DIGIT = 1 << 5,
};

#define DIGIT_(c) ((c) >= '0' && (c) <= '9')
#define ALPHA_(c) (((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define TCHAR_(c)                                                                                  \
    (DIGIT_(c) || ALPHA_(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||             \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define HEX_(c) (DIGIT_(c) || ((c) >= 'A' && (c) <= 'F') || ((c) >= 'a' && (c) <= 'f'))
#define HOST_(c)                                                                                   \
    (DIGIT_(c) || ALPHA_(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||             \
     (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')
#define CLASS_(c)                                                                                  \
    ((TCHAR_(c) ? C_TCHAR : 0) | ((c) >= 0x21 && (c) <= 0x7e ? C_TARGET : 0) |                     \
     (((c) >= 0x20 && (c) != 0x7f) || (c) == '\t' ? C_VALUE : 0) | (HEX_(c) ? C_HEX : 0) |         \
     (HOST_(c) ? C_HOST : 0) | (DIGIT_(c) ? C_DIGIT : 0))
#define ROW4_(c) CLASS_(c), CLASS_((c) + 1), CLASS_((c) + 2), CLASS_((c) + 3)
#define ROW16_(c) ROW4_(c), ROW4_((c) + 4), ROW4_((c) + 8), ROW4_((c) + 12)
#define ROW64_(c) ROW16_(c), ROW16_((c) + 16), ROW16_((c) + 32), ROW16_((c) + 48)

static const unsigned char char_class[256] = {ROW64_(0), ROW64_(64), ROW64_(128), ROW64_(192)};

#undef ROW64_
#undef ROW16_
#undef ROW4_
#undef CLASS_
#undef HOST_
#undef HEX_
#undef TCHAR_
#undef ALPHA_
#undef DIGIT_

static inline bool is_class(char c, unsigned cls)
{
    return (char_class[(unsigned char)c] & cls) != 0;
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Value of a byte already known to be a HEXDIG. */
static inline unsigned hex_value(char c)
{
    unsigned u = (unsigned char)c;
    return u <= '9' ? u - '0' : (u | 0x20) - 'a' + 10;
}

#endif /* GRACE_HTTP_CHARS_H */
