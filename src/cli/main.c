// SPDX-License-Identifier: MIT
/*
 * disagg: the command-line client of the orchestrator's REST API, and
 * `disagg up`/`down` for a one-machine cluster.
 *
 * Every subcommand is one row of cmd_table below, or of a table that a
 * command module brings (cli.h: the regions'): the words that select it,
 * its synopsis, its help, its options and its handler. The parser here
 * is generic: global options (--url, --data, --json, -v, -h, --version) are
 * accepted anywhere on the line, command options as --name VALUE or
 * --name=VALUE, and `--` ends the options. Usage errors exit with 2 and
 * print the command's help; help is also `disagg help CMD` and `CMD -h`.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#ifndef DISAGG_VERSION
#define DISAGG_VERSION "unknown"
#endif

int cmd_node_revoke(struct cli_args *a)
{
	return cli_node_action(a, "revoke", "revoked: memory nodes and device nodes refuse it from now on");
}

static const struct cli_cmd cmd_table[] = {
	{ "up", "[--memnodes N] [--computes N] [--devnodes N] [--pool SIZE] [--persistent] [--accel auto|kvm|tcg] [--address IP] [--fabric-plaintext] [--timeout S]", 0, 0,
	  "start a cluster on this machine (loopback, fresh key)",
	  "Starts disagg-orchestrator, N memory nodes (ids 100, 101, ...), device nodes\n"
	  "(ids 300, ...) and M compute nodes (ids 1, 2, ...) on 127.0.0.1 (--address) with\n"
	  "free ports, detached, and waits until every node is up. Everything lives in the\n"
	  "data directory (--data): cluster.key, cluster.json (pids, addresses),\n"
	  "orchestrator.db, logs/NAME.log.\n"
	  "Commands run later find the orchestrator through DIR/cluster.json.",
	  cmd_up,
	  { { "memnodes", "N", "memory nodes to start (default 2)" },
	    { "computes", "N", "compute nodes to start (default 1)" },
	    { "devnodes", "N", "device nodes to start (default 1; 0: none); they need\n"
	      "--fabric-plaintext: without it, none starts (with a warning)" },
	    { "pool", "SIZE", "pool size of each memory node (default 1G)" },
	    { "persistent", NULL, "memory nodes keep their pools in DIR/memnode-ID.pool, so a\n"
	      "restarted memory node comes back with its sections" },
	    { "accel", "MODE", "compute nodes' accelerator: auto, kvm or tcg (default auto)" },
	    { "address", "IP", "the IPv4 address of this machine every daemon listens on\n"
	      "(default 127.0.0.1; another one lets other hosts or network namespaces reach\n"
	      "the cluster)" },
	    { "fabric-plaintext", NULL, "memory-node connections without TLS (every daemon gets\n"
	      "--fabric-plaintext): only to measure what TLS costs, never on a network" },
	    { "timeout", "S", "seconds to wait for the nodes to come up (default 180)" } } },
	{ "down", "[--timeout S]", 0, 0, "stop the cluster started by `disagg up`",
	  "SIGTERM to the compute nodes, then the device nodes, then the memory nodes,\n"
	  "then the orchestrator; SIGKILL to whatever is still running after the timeout.\n"
	  "Logs and the orchestrator database stay in the data directory.",
	  cmd_down,
	  { { "timeout", "S", "seconds to wait for each tier before SIGKILL (default 30)" } } },
	{ "status", "", 0, 0, "show the local cluster's processes and whether they run",
	  "Reads DIR/cluster.json (written by `disagg up`) and checks every process.", cmd_status,
	  { { NULL } } },
	{ "node ls", "", 0, 0, "list nodes", NULL, cmd_node_ls, { { NULL } } },
	{ "node show", "ID", 1, 1, "show a node, its sections or slots", NULL, cmd_node_show,
	  { { NULL } } },
	{ "node drain", "ID", 1, 1, "let a node take no new slots or sections",
	  "Existing slots and sections stay where they are.", cmd_node_drain, { { NULL } } },
	{ "node undrain", "ID", 1, 1, "let a drained node take work again", NULL, cmd_node_undrain,
	  { { NULL } } },
	{ "node label", "ID KEY=VALUE...", 2, 4, "set (KEY=VALUE) or remove (KEY=) a node's labels",
	  "A memory node's zone label decides where the replicas of a section go (distinct\n"
	  "zones: docs/replication.md). Up to 3 at once. A node that registers again\n"
	  "replaces the labels it registers with.", cmd_node_label, { { NULL } } },
	{ "node remove", "ID", 1, 1, "forget a node (drained first; its replicas repaired elsewhere)",
	  "Drains the node, takes its replicas out (they are repaired on other memory\n"
	  "nodes) and forgets it once nothing uses it; until then it answers 409 in_use\n"
	  "and says what still does. Stop the node first: one that heartbeats registers\n"
	  "again.", cmd_node_remove, { { NULL } } },
	{ "node revoke", "ID", 1, 1, "shut a node's certificate out of the fabric",
	  "Memory nodes and device nodes close its connections at once and refuse it from then "
	  "on; the list is kept by the orchestrator and by every memory and device node. There "
	  "is no undo: issue the node a certificate with a new id.", cmd_node_revoke, { { NULL } } },
	{ "slot create",
	  "NAME --vcpus N --memory SIZE [--remote PERCENT] [--cache SIZE] [--policy spread|pack] "
	  "[--hotplug dimm|virtio-mem] [--encrypt yes|no] [--net user|bridge:BR|none] [--replicas N] "
	  "[--image IMG [--disk SIZE] [--ssh-key FILE]... [--user-data FILE] [--append ARGS]] "
	  "[--volume NAME]...",
	  1, 1, "create a slot and start its VM",
	  "The orchestrator picks a compute node and memory nodes, allocates the\n"
	  "sections and starts the VM; the command returns when the VM runs. SIZE is\n"
	  "bytes or a number with K, M, G or T (binary: 512M, 1.5G); memory must be a\n"
	  "whole number of sections (128M).\n"
	  "With --image the VM boots that image from its own root disk, a clone of\n"
	  "the image named NAME-root (deleted with the slot unless `slot delete\n"
	  "--keep-disk`); --vcpus then defaults to 1 and --memory to 1G. cloud-init\n"
	  "sets the host name (NAME) and the ssh keys, or runs --user-data.",
	  cmd_slot_create,
	  { { "vcpus", "N", "virtual CPUs (required, but for --image: 1)" },
	    { "memory", "SIZE", "memory at boot (required, but for --image: 1G)" },
	    { "remote", "PERCENT", "share of the memory on memory nodes (default 100)" },
	    { "cache", "SIZE", "local cache budget for the remote part (default: no limit)" },
	    { "policy", "POLICY", "placement: spread (default) or pack" },
	    { "replicas", "N",
	      "memory nodes holding each remote section, 1 to 3 (default: the orchestrator's)" },
	    { "hotplug", "KIND", "memory hotplug: dimm (default) or virtio-mem" },
	    { "encrypt", "yes|no",
	      "seal pages sent to memory nodes with the slot's key (default yes)" },
	    { "net", "MODE",
	      "network card: user (default: QEMU's network, ssh forwarded), bridge:BR, none" },
	    { "image", "IMG", "boot this image (disagg image import) from a root disk" },
	    { "disk", "SIZE", "the root disk's size (default: the image's)" },
	    { "ssh-key", "FILE", "a public key the user debian logs in with (repeatable)" },
	    { "user-data", "FILE", "cloud-init user data (instead of --ssh-key)" },
	    { "append", "ARGS", "more kernel command line for --image" },
	    { "volume", "NAME", "attach this volume at create (repeatable)" } } },
	{ "slot ls", "", 0, 0, "list slots", NULL, cmd_slot_ls, { { NULL } } },
	{ "slot show", "NAME", 1, 1, "show a slot and where its memory lives", NULL, cmd_slot_show,
	  { { NULL } } },
	{ "slot guest", "NAME 'COMMAND ARGS'", 2, 2, "run a disagg-guest command inside the VM",
	  "Sends one line of the guest helper's protocol (docs/guest.md) through the\n"
	  "orchestrator and the compute node, and prints the answer: for example\n"
	  "'MEMINFO', 'FILL 1 7 256' (256 MiB of pattern 7 as region 1), 'VERIFY 1'.\n"
	  "Exits 1 when the guest answers ERR.",
	  cmd_slot_guest, { { NULL } } },
	{ "slot delete", "NAME [--keep-disk]", 1, 1, "stop the VM and free its sections",
	  "A slot created with --image takes its root disk (NAME-root) with it unless\n"
	  "--keep-disk: the volume then stays, free, for another slot.", cmd_slot_delete,
	  { { "keep-disk", NULL, "keep the root disk of an --image slot" } } },
	{ "slot resize", "NAME --memory SIZE", 1, 1, "grow or shrink a running slot's memory",
	  "Grows by hot-adding sections, shrinks by hot-removing the last added ones.",
	  cmd_slot_resize, { { "memory", "SIZE", "the new memory size (required)" } } },
	{ "slot migrate", "NAME --to COMPUTE_ID [--no-prefetch]", 1, 1,
	  "move a running slot to another compute node",
	  "Compute migration: the VM moves while its memory stays on the memory nodes\n"
	  "(only CPU and device state cross). Local sections move to memory nodes first.\n"
	  "The destination prefetches the pages the guest used last on the source.\n"
	  "Prints the total time, QEMU's downtime and the bytes sent between the\n"
	  "compute nodes. On failure the VM keeps running where it was.",
	  cmd_slot_migrate, { { "to", "ID", "the destination compute node (required)" },
			      { "no-prefetch", NULL, "do not prefetch the source's hot pages" } } },
	{ "slot migrate-memory", "NAME --from MEMNODE --to MEMNODE [--section INDEX]", 1, 1,
	  "move a slot's sections to another memory node while the VM runs",
	  "Memory migration: every section of the slot on --from (or only section INDEX)\n"
	  "is copied to --to and switched over, one at a time; prints per section the\n"
	  "pages copied and re-sent and the pause, then a summary. A section that fails\n"
	  "stays where it was.",
	  cmd_slot_migrate_memory,
	  { { "from", "ID", "the memory node to move from (required)" },
	    { "to", "ID", "the memory node to move to (required)" },
	    { "section", "INDEX", "only this section of the slot" } } },
	{ "section ls", "[--node ID] [--slot NAME | --region NAME]", 0, 0,
	  "list allocated sections (slots' and shared regions')", NULL, cmd_section_ls,
	  { { "node", "ID", "only sections on this memory node" },
	    { "slot", "NAME", "only sections of this slot" },
	    { "region", "NAME", "only sections of this shared region" } } },
	{ "events", "[--follow] [--since SEQ] [--limit N]", 0, 0, "show the orchestrator's events",
	  "With --follow, prints new events as they are recorded (a long poll of\n"
	  "GET /v1/events?wait=; Ctrl-C stops);\n"
	  "with --json, one JSON object per line.",
	  cmd_events,
	  { { "follow", NULL, "keep printing new events" },
	    { "since", "SEQ", "only events after this sequence number" },
	    { "limit", "N", "at most N events per request" } } },
};

/* Command i: the rows above, then those the command modules bring (cli.h); NULL past the end. */
static const struct cli_cmd *cmd_nth(size_t i)
{
	if (i < ARRAY_SIZE(cmd_table))
		return &cmd_table[i];
	i -= ARRAY_SIZE(cmd_table);
	if (i < cli_region_ncmds)
		return &cli_region_cmds[i];
	i -= cli_region_ncmds;
	if (i < cli_volume_ncmds)
		return &cli_volume_cmds[i];
	i -= cli_volume_ncmds;
	if (i < cli_image_ncmds)
		return &cli_image_cmds[i];
	i -= cli_image_ncmds;
	return i < cli_console_ncmds ? &cli_console_cmds[i] : NULL;
}

static const char global_help[] =
	"global options:\n"
	"  --url URL      the orchestrator (default: $DISAGG_URL, else DIR/cluster.json)\n"
	"  --data DIR     the local cluster's directory (default: $DISAGG_DATA,\n"
	"                 else $XDG_RUNTIME_DIR/disagg, else /tmp/disagg-UID)\n"
	"  --json         print the server's JSON instead of tables\n"
	"  -v, --verbose  show each HTTP request on stderr\n"
	"  -h, --help     help (of a command: disagg CMD -h)\n"
	"  --version      print the version\n"
	"environment:\n"
	"  DISAGG_TOKEN   the API token (default: the token file of DIR/cluster.json,\n"
	"                 for the orchestrator named there only)\n"
	"  DISAGG_CA      CA certificate (PEM) that an https:// orchestrator must match\n";

const char *cli_opt(const struct cli_args *a, const char *name)
{
	for (int i = 0; i < CLI_MAX_OPTS && a->cmd->opts[i].name; i++)
		if (strcmp(a->cmd->opts[i].name, name) == 0)
			return a->optval[i];
	return NULL;
}

int cli_opt_all(const struct cli_args *a, const char *name, const char *const **ret)
{
	for (int i = 0; i < CLI_MAX_OPTS && a->cmd->opts[i].name; i++)
		if (strcmp(a->cmd->opts[i].name, name) == 0) {
			*ret = a->optall[i];
			return a->optn[i];
		}
	*ret = NULL;
	return 0;
}

bool cli_flag(const struct cli_args *a, const char *name)
{
	return cli_opt(a, name) != NULL;
}

int cli_opt_u64(const struct cli_args *a, const char *opt, uint64_t dflt, uint64_t max,
		uint64_t *ret)
{
	const char *s = cli_opt(a, opt);
	char *end;

	*ret = dflt;
	if (!s)
		return 0;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || errno || *end || *ret > max)
		return cli_usage_error(a, "--%s must be a number from 0 to %" PRIu64 ", not \"%s\"", opt,
				       max, s);
	return 0;
}

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void print_cmd_help(FILE *f, const struct cli_cmd *c, bool full)
{
	fprintf(f, "usage: disagg %s%s%s\n", c->name, c->args[0] ? " " : "", c->args);
	if (full) {
		fprintf(f, "\n%s\n", c->help);
		if (c->more)
			fprintf(f, "\n%s\n", c->more);
	}
	if (c->opts[0].name) {
		fputs("\noptions:\n", f);
		for (int i = 0; i < CLI_MAX_OPTS && c->opts[i].name; i++) {
			char left[64], shortopt[8] = "";

			/* "-x, " (a %c of a NUL short name would end the string there). */
			if (c->opts[i].short_name)
				snprintf(shortopt, sizeof(shortopt), "-%c, ", c->opts[i].short_name);
			snprintf(left, sizeof(left), "%s--%s%s%s", shortopt, c->opts[i].name,
				 c->opts[i].metavar ? " " : "",
				 c->opts[i].metavar ? c->opts[i].metavar : "");
			fprintf(f, "  %-18s %s\n", left, c->opts[i].help);
		}
	}
	if (full)
		fprintf(f, "\n%s", global_help);
	else
		fprintf(f, "\n`disagg %s -h` for more help.\n", c->name);
}

static void print_main_help(FILE *f, const char *group)
{
	const struct cli_cmd *c;

	fputs("usage: disagg [global options] COMMAND [args]\n\n"
	      "disagg drives a disagg cluster through its orchestrator's REST API.\n\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; (c = cmd_nth(i)); i++) {
		size_t glen = group ? strlen(group) : 0;

		if (group && (strncmp(c->name, group, glen) != 0 || c->name[glen] != ' '))
			continue;
		fprintf(f, "  %-14s %s\n", c->name, c->help);
	}
	fprintf(f, "\n%s\nexit status: 0 ok, 1 the server refused or the operation failed,\n"
		   "2 usage error, 3 the orchestrator cannot be reached.\n"
		   "`disagg CMD -h` shows a command's options.\n",
		global_help);
}

int cli_usage_error(const struct cli_args *a, const char *fmt, ...)
{
	va_list ap;

	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n\n", stderr);
	if (a && a->cmd)
		print_cmd_help(stderr, a->cmd, false);
	else
		print_main_help(stderr, NULL);
	return CLI_EXIT_USAGE;
}

/* Is `w` the first word of some command's name (a group such as "slot")? */
static bool is_group(const char *w)
{
	const struct cli_cmd *c;
	size_t n = strlen(w);

	for (size_t i = 0; (c = cmd_nth(i)); i++)
		if (strncmp(c->name, w, n) == 0 && c->name[n] == ' ')
			return true;
	return false;
}

static const struct cli_cmd *find_cmd(const char *w1, const char *w2)
{
	const struct cli_cmd *c;
	char name[64];

	if (w2)
		snprintf(name, sizeof(name), "%s %s", w1, w2);
	else
		snprintf(name, sizeof(name), "%s", w1);
	for (size_t i = 0; (c = cmd_nth(i)); i++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/*
 * The command named by the first words (one word, or group + verb). On a
 * group without its verb, prints the group's commands: to stdout with
 * `help` (a.cmd stays NULL, returns 0), else as a usage error. Returns
 * -exit status on errors.
 */
static int resolve_cmd(struct cli_args *a, const char **words, int nwords, bool help)
{
	if (!is_group(words[0])) {
		a->cmd = find_cmd(words[0], NULL);
		if (!a->cmd) {
			cli_usage_error(NULL, "unknown command `%s`", words[0]);
			return -CLI_EXIT_USAGE;
		}
		return 0;
	}
	if (nwords < 2) {
		if (help) {
			print_main_help(stdout, words[0]);
			return 0;
		}
		fprintf(stderr, "error: `disagg %s` needs a subcommand\n\n", words[0]);
		print_main_help(stderr, words[0]);
		return -CLI_EXIT_USAGE;
	}
	a->cmd = find_cmd(words[0], words[1]);
	if (!a->cmd) {
		fprintf(stderr, "error: unknown command `disagg %s %s`\n\n", words[0], words[1]);
		print_main_help(stderr, words[0]);
		return -CLI_EXIT_USAGE;
	}
	return 0;
}

/* A global option at argv[*i]? Consumes it (and its value); 1 if it was one, <0 on error. */
static int parse_global(struct cli_args *a, int argc, char **argv, int *i, bool *help,
			bool *version)
{
	static const char *const valued[] = { "url", "data" };
	const char *s = argv[*i];

	if (strcmp(s, "--json") == 0) {
		a->json = true;
		return 1;
	}
	if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
		a->verbose = true;
		return 1;
	}
	if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
		*help = true;
		return 1;
	}
	if (strcmp(s, "--version") == 0) {
		*version = true;
		return 1;
	}
	for (size_t k = 0; k < ARRAY_SIZE(valued); k++) {
		size_t n = strlen(valued[k]);
		const char *val;

		if (strncmp(s, "--", 2) != 0 || strncmp(s + 2, valued[k], n) != 0)
			continue;
		if (s[2 + n] == '=')
			val = s + 3 + n;
		else if (s[2 + n] == '\0') {
			if (*i + 1 >= argc)
				return -EINVAL;
			val = argv[++*i];
		} else
			continue;
		if (k == 0)
			a->url = val;
		else
			a->data_dir = val;
		return 1;
	}
	return 0;
}

/* A flag's one-letter alias ("-i"): true if the command has it (now set). */
static bool short_opt(struct cli_args *a, char c)
{
	for (int k = 0; k < CLI_MAX_OPTS && a->cmd->opts[k].name; k++)
		if (a->cmd->opts[k].short_name == c && !a->cmd->opts[k].metavar) {
			a->optval[k] = "";
			return true;
		}
	return false;
}

/* A command option at argv[*i]; 1 if consumed, <0 (with the message printed) if bad. */
static int parse_cmd_opt(struct cli_args *a, int argc, char **argv, int *i)
{
	const char *s = argv[*i] + 2, *eq = strchr(s, '=');
	size_t n = eq ? (size_t)(eq - s) : strlen(s);

	for (int k = 0; k < CLI_MAX_OPTS && a->cmd->opts[k].name; k++) {
		const struct cli_opt *o = &a->cmd->opts[k];

		if (strlen(o->name) != n || strncmp(o->name, s, n) != 0)
			continue;
		if (!o->metavar) {
			if (eq)
				return cli_usage_error(a, "--%s takes no value", o->name), -EINVAL;
			a->optval[k] = "";
		} else if (eq) {
			a->optval[k] = eq + 1;
		} else {
			if (*i + 1 >= argc)
				return cli_usage_error(a, "--%s needs a value (%s)", o->name, o->metavar),
				       -EINVAL;
			a->optval[k] = argv[++*i];
		}
		if (o->metavar) {
			if (a->optn[k] >= CLI_MAX_REPEAT)
				return cli_usage_error(a, "--%s is given more than %d times", o->name,
						       CLI_MAX_REPEAT), -EINVAL;
			a->optall[k][a->optn[k]++] = a->optval[k];
		}
		return 1;
	}
	return cli_usage_error(a, "unknown option --%.*s for `disagg %s`", (int)n, s, a->cmd->name),
	       -EINVAL;
}

int main(int argc, char **argv)
{
	struct cli_args a = { .argv0 = argv[0] };
	const char *words[2 + CLI_MAX_ARGS + 1] = { 0 };
	int nwords = 0, r;
	bool help = false, version = false, opts_done = false;
	int extra = 0;

	/* First pass: globals anywhere, collect the words (command and positionals). */
	for (int i = 1; i < argc; i++) {
		const char *s = argv[i];

		if (!opts_done && strcmp(s, "--") == 0) {
			opts_done = true;
			if (!a.cmd && nwords > 0 && !help && strcmp(words[0], "help") != 0) {
				r = resolve_cmd(&a, words, nwords, false);
				if (r < 0)
					return -r;
			}
			if (a.cmd && a.cmd->passthrough) {
				a.rest = argv + i + 1;
				a.nrest = argc - i - 1;
				break;
			}
			continue;
		}
		if (!opts_done && s[0] == '-' && s[1] != '\0') {
			r = parse_global(&a, argc, argv, &i, &help, &version);
			if (r < 0)
				return cli_usage_error(NULL, "%s needs a value", s);
			if (r > 0)
				continue;
			/* A command option: the command must be known by now. */
			if (!a.cmd) {
				if (nwords == 0)
					return cli_usage_error(NULL, "unknown option %s", s);
				if (help || strcmp(words[0], "help") == 0)
					continue; /* only help will be printed */
				r = resolve_cmd(&a, words, nwords, false);
				if (r < 0)
					return -r;
			}
			if (s[1] != '-' && (s[2] != '\0' || !short_opt(&a, s[1])))
				return cli_usage_error(&a, "unknown option %s", s);
			if (s[1] != '-')
				continue;
			r = parse_cmd_opt(&a, argc, argv, &i);
			if (r < 0)
				return CLI_EXIT_USAGE;
			continue;
		}
		if (nwords < (int)ARRAY_SIZE(words))
			words[nwords++] = s;
		else
			extra++;
	}

	if (version) {
		printf("disagg %s (libcurl %s, jansson %s)\n", DISAGG_VERSION,
		       curl_version_info(CURLVERSION_NOW)->version, jansson_version_str());
		return CLI_EXIT_OK;
	}
	if (nwords > 0 && strcmp(words[0], "help") == 0) {
		help = true;
		memmove(words, words + 1, sizeof(words) - sizeof(words[0]));
		nwords--;
	}
	if (nwords == 0) {
		if (help) {
			print_main_help(stdout, NULL);
			return CLI_EXIT_OK;
		}
		return cli_usage_error(NULL, "no command given");
	}

	int used = 1;
	if (!a.cmd) {
		r = resolve_cmd(&a, words, nwords, help);
		if (r < 0)
			return -r;
		if (!a.cmd)
			return CLI_EXIT_OK;
	}
	if (strchr(a.cmd->name, ' '))
		used = 2;
	if (help) {
		print_cmd_help(stdout, a.cmd, true);
		return CLI_EXIT_OK;
	}

	a.nargs = nwords - used;
	for (int k = 0; k < a.nargs && k < CLI_MAX_ARGS; k++)
		a.args[k] = words[used + k];
	if (a.nargs < a.cmd->min_args)
		return cli_usage_error(&a, "`disagg %s` needs %s", a.cmd->name,
				       a.cmd->args);
	if (a.nargs > a.cmd->max_args || extra)
		return cli_usage_error(&a, "unexpected argument `%s`", words[used + a.cmd->max_args]);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		cli_err("libcurl failed to initialise");
		return CLI_EXIT_ERROR;
	}
	r = a.cmd->fn(&a);
	curl_global_cleanup();
	fflush(stdout);
	if (ferror(stdout))
		return CLI_EXIT_ERROR;
	return r;
}
