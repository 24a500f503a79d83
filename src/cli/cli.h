// SPDX-License-Identifier: MIT
/*
 * disagg, the command-line client: what the modules of src/cli share.
 *
 * main.c holds the one table of subcommands and parses the command line
 * into a struct cli_args; client.c talks HTTP to the orchestrator
 * (libcurl); output.c formats tables, sizes, ages and progress; commands.c
 * implements the API subcommands (migrate.c the slot migrations,
 * regioncmd.c the shared regions, volumecmd.c the volumes, imagecmd.c
 * and imagefile.c the images); up.c and
 * cluster.c start, stop and describe a one-machine cluster (cluster.c also
 * has `down` and `status`). Internally functions return >= 0 or -errno;
 * the handlers return the process exit status (CLI_EXIT_*).
 */
#ifndef DISAGG_CLI_H
#define DISAGG_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "macro.h"

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1,       /* the server refused, or the operation failed */
	CLI_EXIT_USAGE = 2,       /* bad command line */
	CLI_EXIT_UNREACHABLE = 3, /* no orchestrator to talk to */
	CLI_MORE = -1,            /* cli_query: not done, print the human output */
};

/* ---- command table (main.c) ------------------------------------------------ */

#define CLI_MAX_OPTS 16
#define CLI_MAX_REPEAT 8  /* values of an option given more than once */
#define CLI_MAX_ARGS 4

struct cli_opt {
	const char *name;    /* long name without "--" */
	const char *metavar; /* NULL: a flag without a value */
	const char *help;
	char short_name;     /* a one-letter alias ("-i"), or 0 */
};

struct cli_args;
typedef int (*cli_handler_fn)(struct cli_args *a);

struct cli_cmd {
	const char *name;    /* "slot create": the words that select it */
	const char *args;    /* positional synopsis, "NAME" */
	int min_args, max_args;
	const char *help;    /* one line */
	const char *more;    /* longer help (may be NULL) */
	cli_handler_fn fn;
	struct cli_opt opts[CLI_MAX_OPTS];
	bool passthrough;    /* the words after "--" go to the command as they are (rest) */
};

/*
 * Rows that a command module brings itself (regioncmd.c, volumecmd.c),
 * walked after main.c's own table: main.c knows them as data, not as
 * functions.
 */
extern const struct cli_cmd cli_region_cmds[];
extern const size_t cli_region_ncmds;
extern const struct cli_cmd cli_volume_cmds[];
extern const size_t cli_volume_ncmds;
extern const struct cli_cmd cli_image_cmds[];
extern const size_t cli_image_ncmds;
extern const struct cli_cmd cli_console_cmds[];   /* slot console, slot ssh (consolecmd.c) */
extern const size_t cli_console_ncmds;

/* Global state and the parsed command line, handed to every handler. */
struct cli_args {
	const struct cli_cmd *cmd;
	const char *argv0;
	int nargs;
	const char *args[CLI_MAX_ARGS];
	const char *optval[CLI_MAX_OPTS]; /* value, or "" for a flag that was given (the last) */
	const char *optall[CLI_MAX_OPTS][CLI_MAX_REPEAT]; /* every value, in order */
	int optn[CLI_MAX_OPTS];
	char **rest;            /* a passthrough command: the words after "--" */
	int nrest;
	/* global options */
	const char *url;        /* --url, or NULL */
	const char *data_dir;   /* --data, or NULL */
	bool json;
	bool verbose;
};

/* The value of option `name` of the current command, or NULL. */
const char *cli_opt(const struct cli_args *a, const char *name);
bool cli_flag(const struct cli_args *a, const char *name);
/* The values of an option that may be given more than once: how many (*ret: them). */
int cli_opt_all(const struct cli_args *a, const char *name, const char *const **ret);
/* Option `opt` as a number <= max (dflt when absent); CLI_EXIT_USAGE (printed) if bad. */
int cli_opt_u64(const struct cli_args *a, const char *opt, uint64_t dflt, uint64_t max,
		uint64_t *ret);
/* Print a usage error and the command's help on stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const struct cli_args *a, const char *fmt, ...) _printf_(2, 3);
/* "error: ..." on stderr. */
void cli_err(const char *fmt, ...) _printf_(1, 2);

/* ---- HTTP client (client.c) ------------------------------------------------ */

struct cli_resp {
	long status;        /* HTTP status, 0 when no answer */
	char *body;         /* NUL-terminated */
	size_t len;
	json_t *json;       /* parsed body, or NULL */
	char request_id[80];
};

void cli_resp_clear(struct cli_resp *r);
static inline void cli_resp_clearp(struct cli_resp *r)
{
	cli_resp_clear(r);
}
#define _cleanup_resp_ _cleanup_(cli_resp_clearp)

/* Where the orchestrator is: --url, $DISAGG_URL, DIR/cluster.json. NULL if nowhere. */
int cli_resolve_url(const struct cli_args *a, char **ret_url, const char **ret_source);

/*
 * One request. `progress` (may be NULL) is a label for a long operation:
 * progress is shown on stderr while waiting. Mutating requests carry a
 * random X-Request-Id and are retried once, with the same id, when the
 * connection is reset. Returns 0 when the server answered (any status),
 * -errno when it could not be reached (the error already printed).
 */
int cli_http(const struct cli_args *a, const char *method, const char *path, json_t *body,
	     const char *progress, struct cli_resp *ret);
/* cli_http with len bytes of data as the body (application/octet-stream), no progress. */
int cli_http_bytes(const struct cli_args *a, const char *method, const char *path,
		   const void *data, size_t len, struct cli_resp *ret);
/*
 * cli_http, then: CLI_EXIT_UNREACHABLE without an answer, the server's
 * error (CLI_EXIT_ERROR) for a non-2xx one, CLI_EXIT_ERROR when want_json
 * and the body is not a JSON object, else CLI_EXIT_OK (commands.c).
 */
int cli_call(const struct cli_args *a, const char *method, const char *path, json_t *body,
	     const char *progress, bool want_json, struct cli_resp *r);
/*
 * From now on a request under way ends (cli_http: -ECANCELED, nothing
 * printed) once *flag is non-zero, within about a second: a signal
 * handler sets it to stop a long poll (events --follow).
 */
void cli_cancel_on(volatile sig_atomic_t *flag);
/*
 * cli_call for a JSON answer, which --json prints as is: CLI_EXIT_* when the
 * command is done (an error, or --json), CLI_MORE when the caller prints
 * its human output from r->json (commands.c).
 */
int cli_query(const struct cli_args *a, const char *method, const char *path, json_t *body,
	      const char *progress, struct cli_resp *r);
/* prefix + URL-escaped name + suffix (may be NULL), malloc'd (commands.c). */
char *cli_path_with(const char *prefix, const char *name, const char *suffix);
/*
 * One request as it is: no request id, no retry, no progress, nothing
 * printed (the interactive console, consolecmd.c). 0 when the server
 * answered (any status), -errno when it could not be reached.
 */
int cli_http_plain(const struct cli_args *a, const char *method, const char *path,
		   const char *body, long timeout_ms, struct cli_resp *ret);
/* Print the server's error for a non-2xx answer; returns CLI_EXIT_ERROR. */
int cli_server_error(const struct cli_resp *r);
/* Bare GET against an arbitrary base URL with a token (may be NULL), used by `up` to poll. */
int cli_http_get_url(const char *url, const char *token, long timeout_ms, struct cli_resp *ret);
/*
 * The API token for a URL found at `url_source` (cli_resolve_url):
 * $DISAGG_TOKEN, else the first line of cluster.json's "token_file" when
 * the URL came from cluster.json too (a local cluster's token is never sent
 * to another URL). *ret = NULL when there is none; *ret_source says where.
 */
int cli_resolve_token(const struct cli_args *a, const char *url_source, char **ret,
		      const char **ret_source);
/* Read the first token line of a token file (mode 0600 enforced). */
int cli_read_token_file(const char *path, char **ret);

/* ---- output (output.c) ----------------------------------------------------- */

#define TABLE_MAX_COLS 12

struct table {
	int ncols;
	const char *head[TABLE_MAX_COLS];
	bool right[TABLE_MAX_COLS]; /* right-align (numbers) */
	char **cells;               /* nrows * ncols */
	size_t nrows, cap;
};

void table_init(struct table *t, int ncols, const char *const *head);
/* Add a row; a NULL cell prints as "-". */
int table_row(struct table *t, const char *const *cells);
/* Add a row of printf-formatted cells separated by '\t'. */
int table_rowf(struct table *t, const char *fmt, ...) _printf_(2, 3);
void table_print(const struct table *t);
void table_free(struct table *t);

/* 536870912 -> "512M", 1610612736 -> "1.5G". */
void fmt_size(uint64_t bytes, char *buf, size_t len);
/* Parse "512M", "1.5G", "1073741824", "2GiB" into bytes. */
int parse_size(const char *s, uint64_t *ret);
/* Seconds -> "5s", "3m12s", "2h5m", "4d". */
void fmt_duration(double secs, char *buf, size_t len);
/* RFC 3339 UTC time -> age "5s"/"3m"/...; "-" if unparsable. */
void fmt_age(const char *rfc3339, char *buf, size_t len);
/* RFC 3339 UTC time -> seconds since the epoch; -EINVAL if unparsable. */
int parse_time(const char *rfc3339, int64_t *ret);
/* Print JSON on stdout, indented. */
void print_json(const json_t *j);

/* Accessors that tolerate missing or mistyped fields. */
const char *jstr(const json_t *o, const char *key);      /* NULL if absent */
int64_t jint(const json_t *o, const char *key, int64_t dflt);
/* A field printed as text: strings as is, integers in decimal, null/absent "-". */
void jtext(const json_t *o, const char *key, char *buf, size_t len);

/* Progress of a long operation on stderr: a spinner with the elapsed time on a TTY, plain lines otherwise. */
struct progress {
	const char *label;
	uint64_t start_ns, last_ns, last_line_ns;
	bool tty;
	bool active;
	unsigned frame;
};
void progress_start(struct progress *p, const char *label);
void progress_tick(struct progress *p, const char *status); /* status may be NULL */
/* End: "label: done in 1.2s" or "label: failed after 1.2s". */
void progress_end(struct progress *p, bool ok, const char *note);
double progress_elapsed(const struct progress *p);

/* ---- commands (commands.c, slotcmd.c, migrate.c, up.c) --------------------- */

/* Argument parsers for commands: 0, or the usage error's exit status. */
int cli_parse_u64(const struct cli_args *a, const char *what, const char *s, uint64_t max,
		  uint64_t *ret);
int cli_parse_size(const struct cli_args *a, const char *what, const char *s, uint64_t *ret);
/* GET prefix + NAME and print the answer with `print` (--json: as it is). */
int cli_show(struct cli_args *a, const char *prefix, const char *name,
	     void (*print)(const json_t *));
/*
 * A list command: GET path, then a table (columns head[0..ncols), those of
 * the bits of `right` right-aligned) with a row of `row` for each element of
 * the answer's array `key`, or "no KEY" on stderr when it is empty (--json:
 * the answer as it is). The exit status.
 */
int cli_list(struct cli_args *a, const char *path, const char *key, const char *const *head,
	     int ncols, unsigned right, void (*row)(struct table *t, const json_t *x));
/* DELETE prefix + NAME (progress: "deleting WHAT NAME"), then "WHAT NAME deleted". */
int cli_delete(struct cli_args *a, const char *prefix, const char *name, const char *what,
	       bool progress);
/* A size field as "1.5G", or its text ("-" when absent). */
void cli_size_of(const json_t *o, const char *key, char *buf, size_t len);
/* "label value" lines for the fields present, in order (sizes: as sizes). */
void cli_print_fields(const json_t *o, const char *const *keys, const char *const *labels,
		      size_t n, bool sizes);
/* The table of a slot's or node's sections, and of slots (slotcmd.c). */
void cli_print_sections(json_t *secs);
void cli_print_slots(json_t *slots);

int cmd_node_ls(struct cli_args *a);
int cmd_node_show(struct cli_args *a);
int cmd_node_drain(struct cli_args *a);
int cmd_node_undrain(struct cli_args *a);
int cmd_node_revoke(struct cli_args *a);
/* POST /v1/nodes/ID/VERB; prints "node ID DONE" (commands.c). */
int cli_node_action(struct cli_args *a, const char *verb, const char *done);
int cmd_node_label(struct cli_args *a);
int cmd_node_remove(struct cli_args *a);
int cmd_slot_create(struct cli_args *a);
int cmd_slot_ls(struct cli_args *a);
int cmd_slot_show(struct cli_args *a);
int cmd_slot_guest(struct cli_args *a);
int cmd_slot_delete(struct cli_args *a);
int cmd_slot_resize(struct cli_args *a);
int cmd_slot_migrate(struct cli_args *a);
int cmd_slot_migrate_memory(struct cli_args *a);
int cmd_section_ls(struct cli_args *a);
int cmd_events(struct cli_args *a);
int cmd_up(struct cli_args *a);
int cmd_down(struct cli_args *a);
int cmd_status(struct cli_args *a);

/* ---- the local cluster (cluster.c) ----------------------------------------- */

/* The data directory: --data, $DISAGG_DATA, $XDG_RUNTIME_DIR/disagg, /tmp/disagg-UID. */
int cluster_data_dir(const struct cli_args *a, char **ret);
/* Load DIR/cluster.json; -ENOENT if there is none. */
int cluster_load(const char *dir, json_t **ret);
/* Write DIR/cluster.json atomically. */
int cluster_save(const char *dir, const json_t *cluster);
/* DIR/NAME, malloc'd. */
char *cluster_path(const char *dir, const char *name);
/* Lock DIR against a concurrent up/down: an fd, -EBUSY if someone holds it. */
int cluster_lock(const char *dir);
/* Is the process `pid` still the one started at `starttime` (clock ticks since boot)? */
bool cluster_pid_alive(int64_t pid, int64_t starttime);
/* The start time of a process (field 22 of /proc/PID/stat), or -errno. */
int64_t cluster_pid_starttime(int64_t pid);

#endif /* DISAGG_CLI_H */
