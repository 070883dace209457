/* never_ready -- a "new executable" that takes over the inherited sockets
 * but never reports ready (it never calls grace_wait()): the old process must
 * kill it after graceful_timeout_ms and keep serving. It serves nothing. */
#include <unistd.h>

int main(void)
{
    for (;;)
        pause();
}
