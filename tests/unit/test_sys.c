/* test_sys.c -- sys.c: the CPUs a process may use (cgroup cpu.max parsing),
 * the is-executable check. */
#include "internal.h"
#include "test.h"

#include <sched.h>
#include <unistd.h>

static void test_cpu_quota(void)
{
    EXPECT_EQ(grace__cpu_quota("max 100000\n"), 0);      /* no limit */
    EXPECT_EQ(grace__cpu_quota("200000 100000\n"), 2);   /* 2 CPUs */
    EXPECT_EQ(grace__cpu_quota("150000 100000"), 2);     /* 1.5: rounded up */
    EXPECT_EQ(grace__cpu_quota("50000 100000"), 1);      /* half a CPU: one loop */
    EXPECT_EQ(grace__cpu_quota("6400000 100000"), 64);
    EXPECT_EQ(grace__cpu_quota(""), 0);
    EXPECT_EQ(grace__cpu_quota("abc 100000"), 0);
    EXPECT_EQ(grace__cpu_quota("100000 0"), 0);
    EXPECT_EQ(grace__cpu_quota("-5 100000"), 0);
}

static void test_usable_cpus_follow_affinity(void)
{
    cpu_set_t all, one;
    EXPECT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
    int before = grace__usable_cpus();
    EXPECT_TRUE(before >= 1 && before <= CPU_COUNT(&all));
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all)) {
            CPU_SET(c, &one);
            break;
        }
    EXPECT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    EXPECT_EQ(grace__usable_cpus(), 1);
    EXPECT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
    EXPECT_EQ(grace__usable_cpus(), before);
}

static void test_is_executable_file(void)
{
    EXPECT_TRUE(grace__is_executable_file("/bin/sh"));
    EXPECT_TRUE(!grace__is_executable_file("/etc/passwd")); /* not executable */
    EXPECT_TRUE(!grace__is_executable_file("/bin"));        /* a directory */
    EXPECT_TRUE(!grace__is_executable_file("/no/such/file"));
}

TEST_MAIN(TEST(test_cpu_quota), TEST(test_usable_cpus_follow_affinity),
          TEST(test_is_executable_file))
