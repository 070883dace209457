/*
 * gracectl.c -- operate programs built with grace: status, restart and
 * shutdown of one program (by PID file, PID or admin URL), and a rolling
 * restart of a fleet through the admin URLs. This file is the command
 * line: the commands, their options, and the exit codes (gracectl.h) that
 * scripts rely on; help.c holds the --help texts, docs/operations.md says
 * the same at more length.
 *
 * Every command parses with one getopt_long table and then refuses the
 * options it does not take, so a misplaced option is a usage error (exit 2)
 * rather than silently ignored. local.c and remote.c do the work for one
 * program, rolling.c for a fleet.
 */
#include "gracectl.h"
#include "grace.h" /* the version macros only: gracectl does not link libgrace */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
    O_HELP = 'h',
    O_PID_FILE = 256,
    O_PID,
    O_URL,
    O_TOKEN,
    O_CACERT,
    O_EXE,
    O_FULL,
    O_TIMEOUT,
    O_PARALLEL,
    O_HEALTH,
    O_FILE,
};

#define BIT(o) (1u << ((o)-O_PID_FILE))
#define TARGET_OPTS (BIT(O_PID_FILE) | BIT(O_PID) | BIT(O_URL) | BIT(O_TOKEN) | BIT(O_CACERT))

static const struct option longopts[] = {
    {"help", no_argument, NULL, O_HELP},
    {"pid-file", required_argument, NULL, O_PID_FILE},
    {"pid", required_argument, NULL, O_PID},
    {"url", required_argument, NULL, O_URL},
    {"token", required_argument, NULL, O_TOKEN},
    {"cacert", required_argument, NULL, O_CACERT},
    {"exe", required_argument, NULL, O_EXE},
    {"full", no_argument, NULL, O_FULL},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"parallel", required_argument, NULL, O_PARALLEL},
    {"health", required_argument, NULL, O_HEALTH},
    {"file", required_argument, NULL, O_FILE},
    {NULL, 0, NULL, 0},
};

/* Everything a command line can say. */
typedef struct {
    ctl_target_t t;
    int parallel;
    const char *health, *file;
    char **args; /* operands (URLs) */
    int n_args;
} cli_t;

typedef struct {
    const char *name;
    unsigned opts; /* BIT(O_...) it takes */
    const char *help;
    int (*local)(const ctl_target_t *t);
    int (*remote)(const ctl_target_t *t);
} command_t;

static const command_t commands[] = {
    {"status", TARGET_OPTS | BIT(O_TIMEOUT), help_status, local_status, remote_status},
    {"restart", TARGET_OPTS | BIT(O_TIMEOUT) | BIT(O_EXE) | BIT(O_FULL), help_restart,
     local_restart, remote_restart},
    {"shutdown", TARGET_OPTS | BIT(O_TIMEOUT), help_shutdown, local_shutdown, remote_shutdown},
    {"rolling-restart",
     BIT(O_PARALLEL) | BIT(O_TOKEN) | BIT(O_CACERT) | BIT(O_HEALTH) | BIT(O_EXE) | BIT(O_TIMEOUT) |
         BIT(O_FILE),
     help_rolling, NULL, NULL},
};

static const command_t *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_help(const command_t *c)
{
    if (c == NULL) {
        fputs(help_main, stdout);
        fputs(help_exit_codes, stdout);
        return;
    }
    fputs(c->help, stdout);
    if (c->local == NULL)
        return; /* rolling-restart: its own, shorter, exit status */
    fputs(help_target, stdout);
    printf("  --timeout S    seconds to wait (default %d)\n"
           "  -h, --help     this text\n\n",
           strcmp(c->name, "status") == 0 ? CTL_STATUS_TIMEOUT_S : CTL_DEFAULT_TIMEOUT_S);
    fputs(help_exit_codes, stdout);
}

static int usage_error(const char *cmd, const char *fmt, ...) CTL_PRINTF(2, 3);

static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gracectl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(gracectl %s%s--help tells more)\n", cmd ? cmd : "", cmd ? " " : "");
    return CTL_USAGE;
}

/* ---- parsing --------------------------------------------------------------------- */

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 7 * 86400)
        return false;
    *out = v;
    return true;
}

/* A token goes into a header line: no spaces, no control characters. */
static bool is_token(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return *s != '\0';
}

static const char *option_name(int o)
{
    for (const struct option *p = longopts; p->name; p++)
        if (p->val == o)
            return p->name;
    return "?";
}

/* One option's value into cli: CTL_OK, or a usage error. */
static int take_option(const command_t *c, int o, const char *v, cli_t *cli)
{
    long n = 0;
    if (o == O_PID && !parse_long(v, 1, 0x7fffffff, &n))
        return usage_error(c->name, "--pid %s: not a PID", v);
    if (o == O_PARALLEL && !parse_long(v, 1, 64, &n))
        return usage_error(c->name, "--parallel %s: not a number from 1 to 64", v);
    if (o == O_TIMEOUT && !parse_seconds(v, &cli->t.timeout_s))
        return usage_error(c->name, "--timeout %s: not a number of seconds", v);
    if (o == O_TOKEN && !is_token(v))
        return usage_error(c->name, "--token: empty, or holds spaces or control characters");
    if (o == O_HEALTH && v[0] != '/')
        return usage_error(c->name, "--health %s: a path, starting with '/'", v);
    if ((o == O_EXE || o == O_PID_FILE || o == O_URL || o == O_FILE) && v[0] == '\0')
        return usage_error(c->name, "--%s: empty", option_name(o));
    switch (o) {
    case O_PID_FILE:
        cli->t.pid_file = v;
        break;
    case O_PID:
        cli->t.pid = (pid_t)n;
        break;
    case O_URL:
        cli->t.url = v;
        break;
    case O_TOKEN:
        cli->t.token = v;
        break;
    case O_CACERT:
        cli->t.cacert = v;
        break;
    case O_EXE:
        cli->t.exe = v;
        break;
    case O_FULL:
        cli->t.full = true;
        break;
    case O_PARALLEL:
        cli->parallel = (int)n;
        break;
    case O_HEALTH:
        cli->health = v;
        break;
    case O_FILE:
        cli->file = v;
        break;
    }
    return CTL_OK;
}

/* Options into cli. Returns -1 to go on, or an exit code (0 after --help). */
static int parse(const command_t *c, int argc, char **argv, cli_t *cli)
{
    memset(cli, 0, sizeof *cli);
    cli->parallel = 1;
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (o == O_HELP) {
            print_help(c);
            return CTL_OK;
        }
        if (o == '?')
            return usage_error(c->name, "unknown option %s", argv[optind - 1]);
        if (o == ':')
            return usage_error(c->name, "%s needs a value", argv[optind - 1]);
        if (!(c->opts & BIT(o)))
            return usage_error(c->name, "--%s is not an option of %s", option_name(o), c->name);
        int code = take_option(c, o, optarg, cli);
        if (code != CTL_OK)
            return code;
    }
    cli->args = argv + optind;
    cli->n_args = argc - optind;
    const char *env = getenv(CTL_TOKEN_ENV);
    if (cli->t.token == NULL && (cli->t.url || c->local == NULL) && env && is_token(env))
        cli->t.token = env;
    return -1;
}

/* status, restart, shutdown: one target, and the options that fit it. */
static int check_target(const command_t *c, const cli_t *cli)
{
    const ctl_target_t *t = &cli->t;
    int n = (t->pid_file != NULL) + (t->pid > 0) + (t->url != NULL);
    if (cli->n_args > 0)
        return usage_error(c->name, "unexpected argument %s", cli->args[0]);
    if (n != 1)
        return usage_error(c->name, "%s",
                           n ? "give one target only"
                             : "give a target: --pid-file F, --pid N or --url URL");
    char base[4096], why[600] = "";
    if (t->url && http_admin_base(t->url, base, sizeof base, why, sizeof why) != CTL_OK)
        return usage_error(c->name, "%s", why);
    if (t->url == NULL && (t->token || t->cacert))
        return usage_error(c->name, "--token and --cacert go with --url");
    if (t->exe && t->pid > 0)
        return usage_error(c->name, "--exe needs --pid-file: the executable is handed to the "
                                    "program in PIDFILE.exe, beside its PID file (or use --url, "
                                    "where it becomes newExeFilePath)");
    if (t->exe && t->url && t->exe[0] != '/')
        return usage_error(c->name, "--exe %s: with --url, an absolute path on the server", t->exe);
    if (t->full && t->url)
        return usage_error(c->name, "--full is local only (SIGUSR2); through the admin URL a "
                                    "restart is graceful, or full if the program's graceful "
                                    "mode is off");
    return -1;
}

/* ---- rolling-restart's node list ------------------------------------------------- */

typedef struct {
    char **v;
    size_t n, cap;
} list_t;

static bool list_add(list_t *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return false;
        l->v = v;
        l->cap = cap;
    }
    return (l->v[l->n] = strdup(s)) != NULL && ++l->n;
}

static void list_free(list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* One URL a line; '#' at the start or after a blank starts a comment. */
static int read_url_file(const char *path, list_t *l)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    if (f == NULL)
        return usage_error("rolling-restart", "--file %s: %s", path, strerror(errno));
    char line[4096];
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        for (char *p = line; *p; p++)
            if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
                *p = '\0';
                break;
            }
        char *s = line + strspn(line, " \t\r\n"), *e = s + strlen(s);
        while (e > s && strchr(" \t\r\n", e[-1]))
            *--e = '\0';
        if (*s)
            ok = list_add(l, s);
    }
    if (f != stdin)
        fclose(f);
    return ok ? CTL_OK : CTL_FAILED;
}

static int run_rolling(const command_t *c, const cli_t *cli)
{
    list_t urls = {0};
    int code = CTL_OK;
    for (int i = 0; i < cli->n_args && code == CTL_OK; i++)
        code = list_add(&urls, cli->args[i]) ? CTL_OK : CTL_FAILED;
    if (code == CTL_OK && cli->file)
        code = read_url_file(cli->file, &urls);
    if (code == CTL_OK && urls.n == 0)
        code = usage_error(c->name, "give the nodes' admin URLs (or --file FILE)");
    for (size_t i = 0; i < urls.n && code == CTL_OK; i++) {
        char base[4096], why[600] = "";
        if (http_admin_base(urls.v[i], base, sizeof base, why, sizeof why) != CTL_OK)
            code = usage_error(c->name, "node %zu: %s", i + 1, why);
    }
    if (code == CTL_OK && cli->t.exe && cli->t.exe[0] != '/')
        code = usage_error(c->name, "--exe %s: an absolute path on the nodes", cli->t.exe);
    if (code == CTL_OK) {
        rolling_opts_t o = {
            .urls = urls.v,
            .n_urls = urls.n,
            .parallel = cli->parallel,
            .token = cli->t.token,
            .cacert = cli->t.cacert,
            .health = cli->health,
            .exe = cli->t.exe,
            .timeout_s = cli->t.timeout_s > 0 ? cli->t.timeout_s : CTL_DEFAULT_TIMEOUT_S,
        };
        code = rolling_restart(&o);
    }
    list_free(&urls);
    return code;
}

/* ---- main ------------------------------------------------------------------------ */

static int run(const command_t *c, int argc, char **argv)
{
    cli_t cli;
    int code = parse(c, argc, argv, &cli);
    if (code >= 0)
        return code;
    if (c->local == NULL)
        return run_rolling(c, &cli);
    if ((code = check_target(c, &cli)) >= 0)
        return code;
    return cli.t.url ? c->remote(&cli.t) : c->local(&cli.t);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error(NULL, "give a command: status, restart, shutdown, rolling-restart");
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        const command_t *c = argc > 2 ? find_command(argv[2]) : NULL;
        if (argc > 2 && c == NULL)
            return usage_error(NULL, "no command %s", argv[2]);
        print_help(c);
        return CTL_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("gracectl %d.%d.%d\n", GRACE_VERSION_MAJOR, GRACE_VERSION_MINOR,
               GRACE_VERSION_PATCH);
        return CTL_OK;
    }
    const command_t *c = find_command(name);
    if (c == NULL)
        return usage_error(NULL, "unknown command %s", name);
    signal(SIGPIPE, SIG_IGN); /* a peer gone mid-answer is an error, not a death */
    if (http_init() != CTL_OK) {
        fprintf(stderr, "gracectl: libcurl cannot start\n");
        return CTL_FAILED;
    }
    int code = run(c, argc - 1, argv + 1);
    http_cleanup();
    return code;
}
