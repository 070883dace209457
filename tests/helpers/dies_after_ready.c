/* dies_after_ready -- a "new executable" that takes over the inherited
 * sockets, says ready, serves "dying\n" on / and /pid for 300 ms, then
 * aborts: the old process must take its sockets back (probation). It takes
 * the examples' flags, since it is started with the old process's argv. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "grace.h"
#include "../../examples/flags.h"

#include <stdlib.h>
#include <time.h>

static int dying(grace_request_t *req, grace_response_t *res, void *user)
{
    (void)req;
    (void)user;
    return grace_response_writeln(res, "dying");
}

int main(int argc, char **argv)
{
    static const int default_port = 0;
    ex_flags_t f;
    ex_parse_flags(argc, argv, &f, "--port", &default_port, 1, "dies_after_ready",
                   "Takes over, serves 300 ms, aborts.", EX_FLAG_SLEEP | EX_FLAG_ADMIN);
    grace_server_t *s = grace_server(NULL);
    ex_check(&f, grace_server_bind_handler(s, "/", dying, NULL), "bind /");
    ex_check(&f, grace_server_bind_handler(s, "/pid", dying, NULL), "bind /pid");
    ex_configure(s, &f, f.ports, f.n_ports);
    ex_check(&f, grace_server_start(s), "start");
    grace_ready();
    struct timespec ts = {0, 300 * 1000000L};
    nanosleep(&ts, NULL);
    abort();
}
