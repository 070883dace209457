/*
 * help.c -- the texts of gracectl --help and gracectl COMMAND --help, kept
 * apart from the code so that gracectl.c reads as the command line it
 * parses. docs/operations.md says the same, at more length; the exit
 * codes here are gracectl.h's CTL_* values.
 */
#include "gracectl.h"

const char help_exit_codes[] =
    "Exit status:\n"
    "  0  done\n"
    "  1  the operation failed: the restart failed and was rolled back (the old\n"
    "     process serves on), a node of a rolling restart failed, or no outcome\n"
    "     (no exit) within --timeout\n"
    "  2  usage: a bad command line\n"
    "  3  cannot reach the target: no such PID file or process, connection refused,\n"
    "     no admin page at the URL (404)\n"
    "  4  refused for now: another restart is under way, or max_draining old\n"
    "     processes still drain (\"refused\" in PIDFILE.outcome, or HTTP 503 +\n"
    "     Retry-After); retry later\n"
    "  5  not allowed: HTTP 403 (no or wrong token, newExeFilePath refused), or no\n"
    "     permission to signal the process\n";

const char help_target[] =
    "  --pid-file F   the program's PID file (its --pid-file, or pidFile in\n"
    "                 config.yaml); in master mode it names the master\n"
    "  --pid N        a PID, when there is no PID file (the master's in master mode)\n"
    "  --url URL      the admin page, e.g. http://127.0.0.1:8199/debug/admin;\n"
    "                 http://host:port alone means http://host:port/debug/admin\n"
    "  --token T      admin token, sent as \"Authorization: Bearer T\"; default\n"
    "                 $" CTL_TOKEN_ENV " (which keeps it out of `ps`)\n"
    "  --cacert F     CA certificates (PEM) to check an https:// URL with\n";

const char help_main[] =
    "usage: gracectl COMMAND [OPTIONS]\n"
    "\n"
    "Operate programs built with grace: status, graceful restart and shutdown of a\n"
    "program on this machine (by PID file or PID) or anywhere (by admin URL), and a\n"
    "rolling restart of a fleet.\n"
    "\n"
    "Commands:\n"
    "  status           what the program runs, since when, its last restart\n"
    "  restart          graceful restart (or --full) and its outcome: the new PID,\n"
    "                   or why it failed or was refused\n"
    "  shutdown         graceful shutdown, waiting until it is over\n"
    "  rolling-restart  restart a fleet node by node through the admin URLs\n"
    "  help [COMMAND]   this text, or a command's (also: gracectl COMMAND --help)\n"
    "\n"
    "The target of status, restart and shutdown, one of:\n"
    "  --pid-file F, --pid N     a local program, driven by signals\n"
    "  --url URL [--token T]     the program's admin page (docs/admin.md)\n"
    "\n";

const char help_status[] =
    "usage: gracectl status (--pid-file F | --pid N | --url URL [--token T] [--cacert F])\n"
    "                       [--timeout S]\n"
    "\n"
    "Show what a grace program runs.\n"
    "\n"
    "Local (--pid-file, --pid), from /proc: the PID and whether it runs, its\n"
    "executable and uptime, self-replacing or master mode, a master's children\n"
    "(serving or draining), and with --pid-file the last restart's outcome, which\n"
    "grace keeps beside the PID file (PIDFILE.outcome).\n"
    "Remote (--url), the admin's JSON status: PID, the master's PID in master mode,\n"
    "executable, uptime, graceful mode, servers with their addresses and requests\n"
    "in flight.\n"
    "\n"
    "Options:\n";

const char help_restart[] =
    "usage: gracectl restart [--exe PATH] [--full] (--pid-file F | --pid N) [--timeout S]\n"
    "       gracectl restart [--exe PATH] --url URL [--token T] [--cacert F] [--timeout S]\n"
    "\n"
    "Restart the program gracefully and report the outcome: \"restarted: new pid N\"\n"
    "(exit 0); \"restart failed: WHY\" (exit 1) when the new process did not start\n"
    "or was not ready in time and the old one serves on (rolled back); or \"refused\n"
    "for now: WHY (retry after N s)\" (exit 4) when nothing was tried: another\n"
    "restart is under way, or max_draining old processes still drain. In master\n"
    "mode the master stays and new children replace the old ones; N is a new child.\n"
    "\n"
    "Local: sends SIGUSR1 (SIGUSR2 with --full) and waits for the outcome, shown as\n"
    "it waits on a terminal. With --pid-file the outcome is read from PIDFILE.outcome\n"
    "(grace writes one line per restart: ok, refused or failed, and why);\n"
    "with --pid alone gracectl can only watch /proc (new processes, listening\n"
    "sockets), and the reason of a failure is in the program's log.\n"
    "Remote: GET URL/restart, which answers once the outcome is known.\n"
    "\n"
    "Options:\n"
    "  --exe PATH     restart to another executable (a new version). Locally it is\n"
    "                 handed over in PIDFILE.exe, beside the PID file, so it needs\n"
    "                 --pid-file; with --url it is the admin's newExeFilePath, an\n"
    "                 absolute path on the server in an allowed directory\n"
    "  --full         full restart (SIGUSR2): the program (a master too) drains,\n"
    "                 then executes itself (or --exe) afresh with the same PID:\n"
    "                 \"restarted (full restart): pid N serves again\" once it\n"
    "                 serves; local only\n";

const char help_shutdown[] =
    "usage: gracectl shutdown (--pid-file F | --pid N | --url URL [--token T] [--cacert F])\n"
    "                         [--timeout S]\n"
    "\n"
    "Shut the program down gracefully: it stops accepting, finishes the requests in\n"
    "flight and exits (a master once its children have).\n"
    "Local: SIGTERM, then wait until the process is gone.\n"
    "Remote: GET URL/shutdown, then wait until the address refuses connections.\n"
    "\n"
    "Options:\n";

const char help_rolling[] =
    "usage: gracectl rolling-restart [--parallel N] [--token T] [--cacert F]\n"
    "                                [--health PATH] [--exe PATH] [--timeout S]\n"
    "                                [--file FILE] URL...\n"
    "\n"
    "Restart a fleet through each node's admin URL, one node at a time: read its PID\n"
    "(URL/status), restart it (URL/restart), then wait until its status answers from\n"
    "the new process and the health check passes. The first node that fails stops\n"
    "the run, with which node and why; the nodes after it are not touched. Progress\n"
    "goes to stderr (a line per node, with the time taken), then a summary table\n"
    "(node, old pid, new pid, seconds, result) to stdout. A node that answers 503\n"
    "(refused for now: a restart under way, max_draining) is asked again after its\n"
    "Retry-After, within its timeout.\n"
    "\n"
    "Options:\n"
    "  URL...         admin URLs; http://host:port means http://host:port/debug/admin\n"
    "  --file FILE    more URLs, one per line; '#' starts a comment; '-' is stdin\n"
    "  --parallel N   restart N nodes at a time (default 1)\n"
    "  --health PATH  a path on each node (e.g. /readyz) that must answer 200 before\n"
    "                 the next node starts; default: the status answering is enough\n"
    "  --exe PATH     newExeFilePath for every node (an absolute path on the nodes)\n"
    "  --token T      admin token for every node (\"Authorization: Bearer T\");\n"
    "                 default $" CTL_TOKEN_ENV "\n"
    "  --cacert F     CA certificates (PEM) to check https:// URLs with\n"
    "  --timeout S    seconds per node, restart and health check included (60)\n"
    "  -h, --help     this text\n"
    "\n"
    "Exit status: 0 every node restarted; 1 stopped at a node that failed (or could\n"
    "not be reached); 2 a bad command line.\n";
