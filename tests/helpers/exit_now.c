/* exit_now -- a "new executable" that fails at once: the old process must
 * roll back and keep serving. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "exit_now: failing on purpose\n");
    return 3;
}
