/* config_probe -- grace_config_load(NULL): prints "RESULT WHY", so a test
 * can see which file the search order found ($GRACE_CONFIG, ./config.yaml,
 * ./config/config.yaml). */
#include "grace.h"

#include <stdio.h>

int main(void)
{
    char why[600];
    int r = grace_config_load(NULL, why, sizeof why);
    printf("%d %s\n", r, why);
    return 0;
}
