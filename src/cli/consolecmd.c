// SPDX-License-Identifier: MIT
/*
 * `disagg slot ssh` and `disagg slot console` (printed, or interactive).
 * The rows of these commands are here (cli_console_cmds), not in main.c's
 * table.
 *
 * ssh: the slot's "net" has the address the compute node forwards to the
 * guest's port 22; the command execs ssh on it, with the host key kept
 * under the slot's name (HostKeyAlias) so that it survives the forward's
 * port changing at a compute migration.
 *
 * console: the terminal goes raw; a thread follows the console's output
 * (GET /v1/slots/NAME/console/output?from=N&wait_ms=1000, a long poll
 * through the orchestrator to the compute node) and writes it out; the
 * main thread sends what is typed (POST .../console/input). Ctrl-] ends
 * the session. The terminal is restored on every way out: the escape,
 * an error, end of input, and SIGTERM, SIGHUP or SIGQUIT (Ctrl-C goes to
 * the guest in raw mode).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "hex.h"

#define ESCAPE_KEY  0x1d   /* Ctrl-] */
#define WAIT_MS     1000   /* the output's long poll */
#define CALL_MS     15000
#define INPUT_CHUNK 1024

/* ---- ssh ----------------------------------------------------------------- */

static int cmd_slot_ssh(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = cli_path_with("/v1/slots/", a->args[0], NULL);
	_cleanup_free_ char *alias = NULL, *dest = NULL, *host = NULL;
	const char *user = cli_opt(a, "user") ? cli_opt(a, "user") : "debian";
	const char *ssh, *colon, **argv;
	json_t *net;
	int ret, n = 0;

	if (!path)
		return CLI_EXIT_ERROR;
	if (!*user || strchr(user, '@'))
		return cli_usage_error(a, "--user must be a user name, not \"%s\"", user);
	ret = cli_call(a, "GET", path, NULL, NULL, true, &r);
	if (ret)
		return ret;
	net = json_object_get(r.json, "net");
	ssh = jstr(net, "ssh");
	colon = ssh ? strrchr(ssh, ':') : NULL;
	if (!colon || colon == ssh || !colon[1]) {
		cli_err("slot %s has no ssh forward: its network is %s%s", a->args[0],
			jstr(net, "mode") ? jstr(net, "mode") : "none",
			jstr(net, "bridge") ? " (on a bridge: ssh to the address the guest got there)"
					    : "");
		return CLI_EXIT_ERROR;
	}
	/* "[::1]:22" or "10.0.0.5:40022": the host without brackets. */
	if (ssh[0] == '[' && colon[-1] == ']')
		host = strndup(ssh + 1, (size_t)(colon - ssh - 2));
	else
		host = strndup(ssh, (size_t)(colon - ssh));
	argv = calloc((size_t)a->nrest + 8, sizeof(*argv));
	if (!host || !argv || asprintf(&alias, "HostKeyAlias=disagg-slot-%s", a->args[0]) < 0 ||
	    asprintf(&dest, "%s@%s", user, host) < 0) {
		free(argv);
		return CLI_EXIT_ERROR;
	}
	argv[n++] = "ssh";
	argv[n++] = "-p";
	argv[n++] = colon + 1;
	argv[n++] = "-o";
	argv[n++] = alias;
	argv[n++] = dest;
	for (int i = 0; i < a->nrest; i++)   /* ssh takes options after the destination too */
		argv[n++] = a->rest[i];
	if (a->json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:[]}", "name", a->args[0], "ssh", ssh,
				      "user", user, "argv");

		for (int i = 0; j && i < n; i++)
			json_array_append_new(json_object_get(j, "argv"), json_string(argv[i]));
		print_json(j);
		json_decref(j);
		free(argv);
		return CLI_EXIT_OK;
	}
	fflush(NULL);
	execvp("ssh", (char *const *)argv);
	cli_err("cannot run ssh: %s", strerror(errno));
	free(argv);
	return CLI_EXIT_ERROR;
}

/* ---- the terminal --------------------------------------------------------- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_raw;

static void term_restore(void)
{
	if (tio_raw) {
		tcsetattr(0, TCSADRAIN, &saved_tio);
		tio_raw = 0;
	}
}

static void on_fatal_signal(int sig)
{
	term_restore();   /* tcsetattr is async-signal-safe */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void term_raw(void)
{
	static const int sigs[] = { SIGTERM, SIGHUP, SIGQUIT, SIGINT };
	struct termios t;

	if (!isatty(0) || tcgetattr(0, &saved_tio) < 0)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		signal(sigs[i], on_fatal_signal);
	t = saved_tio;
	cfmakeraw(&t);
	if (tcsetattr(0, TCSADRAIN, &t) == 0)
		tio_raw = 1;
}

/* ---- the session ----------------------------------------------------------- */

struct console {
	struct cli_args *a;
	char *out_path, *in_path;
	uint64_t next;                /* the output's next offset */
	atomic_bool stop;
	int wake[2];                  /* the output thread ended */
	char err[512];                /* why the session ended, "" for the escape */
};

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

/* An answer that is not 2xx, or none at all, as a message. */
static void call_error(struct console *c, const char *what, int r, const struct cli_resp *resp)
{
	const json_t *e = resp->json ? json_object_get(resp->json, "error") : NULL;

	if (r < 0)
		snprintf(c->err, sizeof(c->err), "%s: the orchestrator did not answer: %s", what,
			 strerror(-r));
	else
		snprintf(c->err, sizeof(c->err), "%s: %s (%ld)", what,
			 e && jstr(e, "message") ? jstr(e, "message") : "error", resp->status);
}

/* One GET of the output from c->next (from its end when first): 0, or -1 (c->err says why). */
static int output_once(struct console *c, bool first, int wait_ms)
{
	_cleanup_resp_ struct cli_resp resp = { 0 };
	_cleanup_free_ char *path = NULL, *buf = NULL;
	const char *hex, *state;
	size_t n;
	int r;

	if ((first ? asprintf(&path, "%s?wait_ms=%d", c->out_path, wait_ms)
		   : asprintf(&path, "%s?wait_ms=%d&from=%llu", c->out_path, wait_ms,
			      (unsigned long long)c->next)) < 0)
		return -1;
	r = cli_http_plain(c->a, "GET", path, NULL, CALL_MS, &resp);
	if (r < 0 || resp.status != 200) {
		call_error(c, "the console", r, &resp);
		return -1;
	}
	hex = jstr(resp.json, "hex");
	n = hex ? strlen(hex) / 2 : 0;
	buf = malloc(n + 1);
	if (!buf || (hex && hex_decode(hex, (uint8_t *)buf, n) < 0)) {
		snprintf(c->err, sizeof(c->err), "the console: a bad answer");
		return -1;
	}
	write_all(1, buf, n);
	c->next = (uint64_t)jint(resp.json, "next", (int64_t)c->next);
	state = jstr(resp.json, "state");
	if (state && (!strcmp(state, "stopped") || !strcmp(state, "failed"))) {
		snprintf(c->err, sizeof(c->err), "the VM is %s", state);
		return -1;
	}
	return 0;
}

static void *output_main(void *arg)
{
	struct console *c = arg;

	while (!atomic_load(&c->stop))
		if (output_once(c, false, WAIT_MS) < 0)
			break;
	write_all(c->wake[1], "x", 1);
	return NULL;
}

static int input_send(struct console *c, const char *buf, size_t len)
{
	_cleanup_resp_ struct cli_resp resp = { 0 };
	_cleanup_free_ char *hex = malloc(2 * len + 1);
	_cleanup_(json_decrefp) json_t *j = NULL;
	_cleanup_free_ char *body = NULL;
	int r;

	if (!hex)
		return -1;
	hex_encode((const uint8_t *)buf, len, hex);
	j = json_pack("{s:s}", "hex", hex);
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!body)
		return -1;
	r = cli_http_plain(c->a, "POST", c->in_path, body, CALL_MS, &resp);
	if (r < 0 || resp.status != 200) {
		call_error(c, "typing into the console", r, &resp);
		return -1;
	}
	return 0;
}

/* Read the terminal until the escape, end of input or an error: 0 or -1. */
static int input_loop(struct console *c)
{
	char buf[INPUT_CHUNK];

	for (;;) {
		struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = c->wake[0], .events = POLLIN } };
		char *esc;
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[1].revents)
			return -1;            /* the output ended: c->err says why */
		n = read(0, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;             /* end of input */
		esc = memchr(buf, ESCAPE_KEY, (size_t)n);
		if ((esc ? esc - buf : n) > 0 &&
		    input_send(c, buf, esc ? (size_t)(esc - buf) : (size_t)n) < 0)
			return -1;
		if (esc)
			return 0;
	}
}

static int console_interactive(struct cli_args *a, const char *name)
{
	struct console c = { .a = a, .wake = { -1, -1 } };
	pthread_t t;
	bool started = false;
	int r = -1;

	c.out_path = cli_path_with("/v1/slots/", name, "/console/output");
	c.in_path = cli_path_with("/v1/slots/", name, "/console/input");
	if (!c.out_path || !c.in_path || pipe2(c.wake, O_CLOEXEC) < 0) {
		cli_err("out of memory");
		goto out;
	}
	/* Where the output is now, before anything is typed: no echo is missed. */
	if (output_once(&c, true, 0) < 0) {
		cli_err("slot %s: %s", name, c.err);
		goto out;
	}
	fprintf(stderr, "Connected to the console of slot %s (Ctrl-] to detach)\n", name);
	term_raw();
	if (pthread_create(&t, NULL, output_main, &c) != 0) {
		snprintf(c.err, sizeof(c.err), "cannot start a thread");
	} else {
		started = true;
		r = input_loop(&c);
	}
	atomic_store(&c.stop, true);
	if (started)
		pthread_join(t, NULL);   /* at most one long poll */
	term_restore();
	if (r < 0)
		fprintf(stderr, "\nerror: slot %s: %s\n", name, c.err[0] ? c.err : "the console ended");
	else
		fprintf(stderr, "\nDetached from the console of slot %s\n", name);
out:
	if (c.wake[0] >= 0) {
		close(c.wake[0]);
		close(c.wake[1]);
	}
	free(c.out_path);
	free(c.in_path);
	return r < 0 ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}

/* ---- the commands ---------------------------------------------------------- */

static int cmd_slot_console(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = cli_path_with("/v1/slots/", a->args[0], "/console");
	int ret;

	if (!path)
		return CLI_EXIT_ERROR;
	/* Interactive on a terminal; the tail for pipes and --json. */
	if (cli_flag(a, "interactive") || (!a->json && isatty(0) && isatty(1)))
		return console_interactive(a, a->args[0]);
	ret = cli_call(a, "GET", path, NULL, NULL, false, &r);
	if (ret)
		return ret;
	if (a->json) {
		_cleanup_(json_decrefp) json_t *j = NULL;

		/* The console is text; --json wraps it (a JSON answer is printed as is). */
		if (json_is_object(r.json)) {
			print_json(r.json);
			return CLI_EXIT_OK;
		}
		j = json_pack("{s:s, s:s%}", "name", a->args[0], "console",
			      r.body ? r.body : "", r.len);
		if (!j)
			j = json_pack("{s:s, s:s}", "name", a->args[0], "console",
				      "(not valid UTF-8)");
		print_json(j);
		return CLI_EXIT_OK;
	}
	if (r.len)
		fwrite(r.body, 1, r.len, stdout);
	if (r.len && r.body[r.len - 1] != '\n')
		putchar('\n');
	return CLI_EXIT_OK;
}

const struct cli_cmd cli_console_cmds[] = {
	{ "slot console", "NAME [-i]", 1, 1, "the VM's serial console: print it, or attach to it",
	  "On a terminal (stdin and stdout), or with -i, attaches to the console like\n"
	  "`virsh console`: the terminal goes raw, what you type goes to the guest's\n"
	  "serial port and what it writes comes back; Ctrl-] detaches (exit 0). Else\n"
	  "(a pipe, --json) prints the console's last MiB and exits.",
	  cmd_slot_console,
	  { { "interactive", NULL, "attach even when stdin or stdout is not a terminal", 'i' } } },
	{ "slot ssh", "NAME [--user USER] [-- SSH ARGS]", 1, 1, "ssh into the VM",
	  "Runs `ssh -p PORT USER@HOST` on the address the compute node forwards to\n"
	  "the guest's port 22 (a slot on the user network; `disagg slot show` has it).\n"
	  "The host key is remembered under the slot's name (HostKeyAlias), so it\n"
	  "stays valid when the forward's port changes (a compute migration). Words\n"
	  "after -- go to ssh after the destination: options or a command.",
	  cmd_slot_ssh,
	  { { "user", "USER", "the user to log in as (default debian, the Debian cloud images' user)" } },
	  true },
};

const size_t cli_console_ncmds = ARRAY_SIZE(cli_console_cmds);
