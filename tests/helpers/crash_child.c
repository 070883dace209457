/* crash_child -- a master-mode program whose children crash at once: the
 * master must back off (100 ms, 200 ms, ... 10 s) instead of spinning. It
 * takes the examples' flags and always runs in master mode. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "grace.h"
#include "../../examples/flags.h"

#include <stdlib.h>
#include <string.h>

static int hello(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_writeln(res, "never");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], GRACE_CHILD_FLAG) == 0)
            abort(); /* a child: crash before it is ready */
    static const int default_port = 0;
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1, "crash_child",
                   "A master whose children crash at once.", EX_FLAG_SLEEP | EX_FLAG_ADMIN);
    if (f.workers == 0)
        f.workers = 1;
    grace_server_t *s = grace_server(NULL);
    ex_check(&f, grace_server_bind_handler(s, "/", hello, NULL), "bind /");
    ex_configure(s, &f, f.ports, f.n_ports);
    return grace_server_run(s) < 0;
}
