// SPDX-License-Identifier: MIT
/*
 * `disagg up`, `disagg down` and `disagg status`: a whole cluster on one
 * machine, on loopback (or on the address --address names), with a fresh
 * cluster key.
 *
 * `up` creates the data directory (cluster.key, orchestrator.db, logs/),
 * starts disagg-orchestrator, then the memory nodes, device nodes and
 * compute nodes (their command lines: upnode.c) with --orchestrator
 * pointing at it, each detached in its own session with stdout and
 * stderr in logs/NAME.log. A daemon announces itself with one
 * line, "PROGRAM listening on ADDR ...", which is read back from its log
 * to learn the ports it picked. cluster.json records every pid (with its
 * start time, so a recycled pid is never signalled) and address, and is
 * rewritten after each step so that `down` can clean up even after an
 * interrupted `up`. `up` returns once the orchestrator lists every node
 * as `up`; on any failure it stops what it started and points at the log
 * of the component that failed.
 *
 * The programs are looked up next to the disagg executable as invoked
 * (build/bin holds symlinks), next to the executable it resolves to, in
 * the sibling directories of a meson build tree, then in PATH.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "cert.h"
#include "findprog.h"
#include "cli.h"
#include "upauth.h"
#include "upnode.h"
#include "net.h"


#define UP_POLL_MS 200
#define DEFAULT_UP_TIMEOUT_S 180
#define UP_ORCHESTRATOR_ID "1000" /* memory nodes are 100..163, compute nodes 1..64 */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	interrupted = sig;
}

static char *join(const char *dir, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* ---- components -------------------------------------------------------- */

struct comp {
	char name[32];          /* orchestrator, memnode-100, devnode-300, compute-1 */
	const char *kind;       /* orchestrator, memnode, devnode, compute */
	const char *prog;       /* disagg-orchestrator ... */
	int64_t node_id;        /* -1 for the orchestrator */
	char *path;             /* the program */
	char *log;
	char *tls_cert, *tls_key; /* its fabric certificate (DIR/tls/NAME.pem, .key) */
	pid_t pid;
	int64_t starttime;
	char addr[128], http[128], extra[64];
	bool ready, exited;
	int status;             /* wait status once exited */
	char state[32];         /* its state in GET /v1/nodes, "" if not listed */
};

static void comp_free(struct comp *c)
{
	free(c->path);
	free(c->log);
	free(c->tls_cert);
	free(c->tls_key);
}

static json_t *comp_json(const struct comp *c)
{
	return json_pack("{s:s, s:s, s:o, s:I, s:I, s:s, s:o, s:o, s:s}", "name", c->name, "kind",
			 c->kind, "node_id",
			 c->node_id >= 0 ? json_integer(c->node_id) : json_null(), "pid",
			 (json_int_t)c->pid, "starttime", (json_int_t)c->starttime, "program", c->path,
			 "addr", c->addr[0] ? json_string(c->addr) : json_null(), "http",
			 c->http[0] ? json_string(c->http) : json_null(), "log", c->log);
}

struct up {
	char *dir, *key, *gkey, *gpub, *url;
	struct upauth auth;     /* API token and node credentials (upauth.h) */
	char *tlsdir, *ca;       /* DIR/tls, DIR/tls/ca.pem */
	struct comp *comps;
	size_t ncomps;
	char created[32];
};

static int up_save(const struct up *u)
{
	_cleanup_(json_decrefp) json_t *j = NULL;
	json_t *arr = json_array();

	for (size_t i = 0; i < u->ncomps; i++)
		if (u->comps[i].pid > 0)
			json_array_append_new(arr, comp_json(&u->comps[i]));
	j = json_pack("{s:i, s:s, s:o, s:s, s:s, s:s, s:s, s:o, s:s*}", "version", 1, "dir", u->dir,
		      "url", u->url ? json_string(u->url) : json_null(), "key", u->key,
		      "grant_key", u->gkey, "grant_pubkey", u->gpub, "created", u->created,
		      "components", arr, "token_file", u->auth.tokens);
	return j ? cluster_save(u->dir, j) : -ENOMEM;
}

/* Last `n` lines of a log, indented, on stderr. */
static void show_log_tail(const char *path, int n)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *lines[64] = { 0 }, buf[1024];
	int count = 0;

	n = MIN(n, (int)ARRAY_SIZE(lines));
	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		free(lines[count % n]);
		lines[count % n] = strdup(buf);
		count++;
	}
	if (count == 0) {
		fprintf(stderr, "  (the log is empty)\n");
		return;
	}
	for (int i = MAX(0, count - n); i < count; i++) {
		const char *l = lines[i % n];

		fprintf(stderr, "  | %s%s", l ? l : "", l && strchr(l, '\n') ? "" : "\n");
	}
	for (int i = 0; i < n; i++)
		free(lines[i]);
}

static int spawn(struct comp *c, char *const argv[])
{
	_cleanup_close_ int logfd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
					 0600);
	pid_t pid;

	if (logfd < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		sigset_t none;
		int nullfd = open("/dev/null", O_RDONLY);

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		setsid();
		if (nullfd < 0 || dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		execv(c->path, argv);
		dprintf(2, "disagg up: cannot run %s: %s\n", c->path, strerror(errno));
		_exit(127);
	}
	c->pid = pid;
	/* Right after fork, /proc/PID/stat exists (the child may still be us, same start time). */
	c->starttime = cluster_pid_starttime(pid);
	return 0;
}

/* Reap a child that exited; true if it is gone. */
static bool comp_exited(struct comp *c)
{
	int st;

	if (c->exited)
		return true;
	if (c->pid > 0 && waitpid(c->pid, &st, WNOHANG) == c->pid) {
		c->exited = true;
		c->status = st;
	}
	return c->exited;
}

static void describe_exit(const struct comp *c, char *buf, size_t len)
{
	if (WIFEXITED(c->status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(c->status));
	else if (WIFSIGNALED(c->status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(c->status),
			 strsignal(WTERMSIG(c->status)));
	else
		snprintf(buf, len, "stopped");
}

/* Look for "PROG listening on ADDR [http ADDR] [accel X]" in the log. 1 when found. */
static int scan_ready(struct comp *c)
{
	_cleanup_fclose_ FILE *f = fopen(c->log, "re");
	char line[1024], pat[64];

	if (!f)
		return 0;
	snprintf(pat, sizeof(pat), "%s listening on ", c->prog);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, pat), *tok, *save = NULL;

		if (!p || !strchr(p, '\n'))
			continue;
		p += strlen(pat);
		p[strcspn(p, "\r\n")] = '\0';
		tok = strtok_r(p, " ", &save);
		if (!tok)
			continue;
		snprintf(c->addr, sizeof(c->addr), "%s", tok);
		while ((tok = strtok_r(NULL, " ", &save))) {
			char *val = strtok_r(NULL, " ", &save);

			if (!val)
				break;
			if (strcmp(tok, "http") == 0)
				snprintf(c->http, sizeof(c->http), "%s", val);
			else if (strcmp(tok, "accel") == 0)
				snprintf(c->extra, sizeof(c->extra), "accel %s", val);
		}
		/* The compute agent's address is its HTTP API. */
		if (!c->http[0] && strcmp(c->kind, "memnode") != 0)
			snprintf(c->http, sizeof(c->http), "%s", c->addr);
		return 1;
	}
	return 0;
}

static int fail_component(const struct comp *c, const char *what)
{
	cli_err("%s %s; its log is %s:", c->name, what, c->log);
	show_log_tail(c->log, 15);
	return -EIO;
}

/* Wait until every component in [from, to) printed its ready line. */
static int wait_ready(struct up *u, size_t from, size_t to, uint64_t deadline_ns,
		      struct progress *p)
{
	for (;;) {
		size_t ready = 0;
		char st[64];

		for (size_t i = from; i < to; i++) {
			struct comp *c = &u->comps[i];

			if (!c->ready && scan_ready(c)) {
				c->ready = true;
				up_save(u);
			}
			if (c->ready) {
				ready++;
				continue;
			}
			if (comp_exited(c)) {
				char why[128];

				describe_exit(c, why, sizeof(why));
				progress_end(p, false, NULL);
				return fail_component(c, why);
			}
		}
		if (ready == to - from)
			return 0;
		if (interrupted)
			return -EINTR;
		if (now_ns() > deadline_ns) {
			for (size_t i = from; i < to; i++)
				if (!u->comps[i].ready) {
					progress_end(p, false, NULL);
					return fail_component(&u->comps[i],
							      "did not print its \"listening on\" line in time");
				}
		}
		snprintf(st, sizeof(st), "%zu/%zu started", ready, to - from);
		progress_tick(p, st);
		usleep(UP_POLL_MS * 1000);
	}
}

/* Wait until GET /v1/nodes shows every node `up`. */
static int wait_nodes_up(struct up *u, uint64_t deadline_ns, struct progress *p)
{
	_cleanup_free_ char *url = join(u->url, "v1/nodes");
	size_t want = 0;

	if (!url)
		return -ENOMEM;
	/* join() put a '/' between: the URL has none at its end. */
	for (size_t i = 0; i < u->ncomps; i++)
		want += u->comps[i].node_id >= 0;
	for (;;) {
		struct cli_resp r;
		size_t up = 0;
		char st[64];

		for (size_t i = 0; i < u->ncomps; i++)
			if (comp_exited(&u->comps[i])) {
				char why[128];

				describe_exit(&u->comps[i], why, sizeof(why));
				progress_end(p, false, NULL);
				return fail_component(&u->comps[i], why);
			}
		if (cli_http_get_url(url, u->auth.token, 5000, &r) == 0) {
			json_t *nodes = json_object_get(r.json, "nodes"), *n;
			size_t k;

			for (size_t i = 0; i < u->ncomps; i++) {
				struct comp *c = &u->comps[i];

				if (c->node_id < 0)
					continue;
				c->state[0] = '\0';
				json_array_foreach(nodes, k, n) {
					const char *state = jstr(n, "state"), *kind = jstr(n, "kind");

					if (jint(n, "node_id", -2) != c->node_id || !kind ||
					    strcmp(kind, c->kind) != 0)
						continue;
					snprintf(c->state, sizeof(c->state), "%s", state ? state : "?");
					up += strcmp(c->state, "up") == 0;
				}
			}
			cli_resp_clear(&r);
		}
		if (up >= want)
			return 0;
		if (interrupted)
			return -EINTR;
		if (now_ns() > deadline_ns) {
			progress_end(p, false, NULL);
			cli_err("only %zu of %zu nodes are up in GET %s after the timeout", up, want, url);
			for (size_t i = 0; i < u->ncomps; i++) {
				const struct comp *c = &u->comps[i];
				char what[96];

				if (c->node_id < 0 || strcmp(c->state, "up") == 0)
					continue;
				if (c->state[0])
					snprintf(what, sizeof(what), "is %s in the orchestrator", c->state);
				else
					snprintf(what, sizeof(what), "never registered with the orchestrator");
				fail_component(c, what);
			}
			fprintf(stderr, "the orchestrator's log is %s\n", u->comps[0].log);
			return -ETIMEDOUT;
		}
		snprintf(st, sizeof(st), "%zu/%zu nodes up", up, want);
		progress_tick(p, st);
		usleep(UP_POLL_MS * 1000);
	}
}

static void up_stop_all(struct up *u)
{
	/* Children of ours: SIGTERM, then reap (so nothing is left as a zombie). */
	for (size_t i = u->ncomps; i-- > 0;) {
		struct comp *c = &u->comps[i];

		if (c->pid > 0 && !comp_exited(c))
			kill(c->pid, SIGTERM);
	}
	for (size_t i = u->ncomps; i-- > 0;) {
		struct comp *c = &u->comps[i];
		uint64_t deadline = now_ns() + 10000000000ull;

		while (c->pid > 0 && !comp_exited(c)) {
			if (now_ns() > deadline) {
				kill(-c->pid, SIGKILL);
				kill(c->pid, SIGKILL);
				waitpid(c->pid, &c->status, 0);
				c->exited = true;
				break;
			}
			usleep(20 * 1000);
		}
	}
}

/* ---- up ------------------------------------------------------------------ */

static int mkdir_p(const char *path, mode_t mode)
{
	_cleanup_free_ char *p = strdup(path);

	if (!p)
		return -ENOMEM;
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* A cluster recorded in DIR that still runs: print it and return true. */
static bool cluster_running(const char *dir, const json_t *cl)
{
	json_t *c;
	size_t i;
	bool any = false;

	json_array_foreach(json_object_get(cl, "components"), i, c) {
		if (cluster_pid_alive(jint(c, "pid", -1), jint(c, "starttime", -1))) {
			if (!any)
				cli_err("a cluster is already running in %s (orchestrator %s); stop it "
					"first with `disagg down`, or use another --data directory",
					dir, jstr(cl, "url") ? jstr(cl, "url") : "-");
			fprintf(stderr, "  %s is running, pid %" PRId64 "\n", jstr(c, "name"),
				jint(c, "pid", -1));
			any = true;
		}
	}
	return any;
}

static bool on_tmpfs(const char *dir)
{
	struct statfs sf;

	return statfs(dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
}

static void print_up_summary(const struct up *u, const struct cli_args *a, double secs)
{
	static const char *const head[] = { "COMPONENT", "ID", "ADDRESS", "HTTP", "PID", "LOG" };
	_cleanup_free_ char *dflt = NULL;
	struct cli_args noargs = { .argv0 = a->argv0 };
	struct table t;
	char el[32];
	bool default_dir;

	cluster_data_dir(&noargs, &dflt);
	default_dir = dflt && strcmp(dflt, u->dir) == 0;
	table_init(&t, ARRAY_SIZE(head), head);
	t.right[1] = t.right[4] = true;
	for (size_t i = 0; i < u->ncomps; i++) {
		const struct comp *c = &u->comps[i];
		char id[32] = "";

		if (c->node_id >= 0)
			snprintf(id, sizeof(id), "%" PRId64, c->node_id);
		table_rowf(&t, "%s\t%s\t%s\t%s\t%d\t%s", c->kind, id, c->addr, c->http,
			   (int)c->pid, c->log);
	}
	fmt_duration(secs, el, sizeof(el));
	printf("cluster up in %s: data in %s\n\n", el, u->dir);
	table_print(&t);
	table_free(&t);
	printf("\norchestrator: %s\n", u->url);
	printf("API token: in %s; other clients: export DISAGG_TOKEN=$(cat %s)\n", u->auth.tokens,
	       u->auth.tokens);
	printf("web view: %s/ui/ (log in with the API token, or open %s/ui/#token=$(cat %s))\n",
	       u->url, u->url, u->auth.tokens);
	if (default_dir)
		printf("disagg commands find it through %s/cluster.json; other clients:\n"
		       "  export DISAGG_URL=%s\n",
		       u->dir, u->url);
	else
		printf("disagg commands find it with --data %s, or:\n"
		       "  export DISAGG_DATA=%s     (or DISAGG_URL=%s)\n",
		       u->dir, u->dir, u->url);
	printf("try:  disagg node ls\n"
	       "      disagg slot create web --vcpus 1 --memory 512M\n");
	for (size_t i = 0; i < u->ncomps; i++)
		if (strcmp(u->comps[i].kind, "devnode") == 0) {
			printf("      disagg volume create disk1 1G\n");
			break;
		}
	printf("stop: disagg down%s%s\n", default_dir ? "" : " --data ", default_dir ? "" : u->dir);
}

static void up_free(struct up *u)
{
	for (size_t i = 0; i < u->ncomps; i++)
		comp_free(&u->comps[i]);
	free(u->comps);
	free(u->dir);
	free(u->key);
	free(u->tlsdir);
	free(u->ca);
	free(u->gkey);
	free(u->gpub);
	free(u->url);
	upauth_clear(&u->auth);
}

/* Issue component c's fabric certificate from the cluster CA (replacing an old one). */
static int up_cert(struct up *u, struct comp *c)
{
	struct cert_id id = {
		.node_id = c->node_id > 0 ? (uint64_t)c->node_id : strtoull(UP_ORCHESTRATOR_ID, NULL, 10),
		.role = strcmp(c->kind, "memnode") == 0 ? CERT_ROLE_MEMORY :
			strcmp(c->kind, "compute") == 0 ? CERT_ROLE_COMPUTE :
			strcmp(c->kind, "devnode") == 0 ? CERT_ROLE_DEVICE : CERT_ROLE_ORCH,
	};
	int r;

	if (asprintf(&c->tls_cert, "%s/%s.pem", u->tlsdir, c->name) < 0 ||
	    asprintf(&c->tls_key, "%s/%s.key", u->tlsdir, c->name) < 0) {
		c->tls_cert = c->tls_key = NULL;
		return -ENOMEM;
	}
	(void)unlink(c->tls_cert);
	(void)unlink(c->tls_key);
	r = cert_issue(u->tlsdir, &id, 0, c->tls_cert, c->tls_key);
	if (r < 0)
		cli_err("cannot issue the certificate of %s: %s", c->name, strerror(-r));
	return r;
}

static int up_prepare(struct up *u, const struct cli_args *a)
{
	_cleanup_(json_decrefp) json_t *old = NULL;
	static const char *const stale[] = { "cluster.json", "cluster.key", "grant.key", "grant.pub",
		"orchestrator.db", "orchestrator.db-wal", "orchestrator.db-shm" };
	int r;

	r = cluster_load(u->dir, &old);
	if (r == 0 && cluster_running(u->dir, old))
		return -EEXIST;
	if (r == 0)
		fprintf(stderr, "note: replacing the state of a stopped cluster in %s\n", u->dir);
	/* A fresh cluster: new key, empty database. Logs are truncated as each program starts. */
	for (size_t i = 0; i < ARRAY_SIZE(stale); i++) {
		_cleanup_free_ char *p = join(u->dir, stale[i]);

		if (p && unlink(p) < 0 && errno != ENOENT) {
			cli_err("cannot remove %s: %s", p, strerror(errno));
			return -errno;
		}
	}
	/* A new cluster CA for the fabric's TLS: DIR/tls/ca.key (0600) and ca.pem. */
	for (const char *const *f = (const char *const[]){ "ca.key", "ca.pem", NULL }; *f; f++) {
		_cleanup_free_ char *p = NULL;

		if (asprintf(&p, "%s/tls/%s", u->dir, *f) < 0)
			return -ENOMEM;
		if (unlink(p) < 0 && errno != ENOENT) {
			cli_err("cannot remove %s: %s", p, strerror(errno));
			return -errno;
		}
	}
	r = cert_new_ca(u->tlsdir, NULL, 0);
	if (r < 0) {
		cli_err("cannot create the cluster CA in %s: %s", u->tlsdir, strerror(-r));
		return r;
	}
	return upauth_make_keys(&u->auth, u->key, u->gkey, u->gpub);
}

int cmd_up(struct cli_args *a)
{
	struct up u = { 0 };
	_cleanup_close_ int lockfd = -1;
	_cleanup_free_ char *logdir = NULL, *rundir = NULL;
	uint64_t nmem, ncomp, ndev, timeout_s, pool, deadline, start;
	const char *accel = cli_opt(a, "accel") ? cli_opt(a, "accel") : "auto";
	const char *pool_s = cli_opt(a, "pool") ? cli_opt(a, "pool") : "1G";
	const char *addr = cli_opt(a, "address") ? cli_opt(a, "address") : "127.0.0.1";
	char bind[INET_ADDRSTRLEN + 2];
	struct in_addr in;
	struct sigaction sa = { .sa_handler = on_interrupt }, old_int, old_term;
	struct progress p = { 0 };
	time_t now = time(NULL);
	int r, ret = CLI_EXIT_ERROR;

	if ((r = cli_opt_u64(a, "memnodes", 2, 64, &nmem)) || (r = cli_opt_u64(a, "computes", 1, 64, &ncomp)) ||
	    (r = cli_opt_u64(a, "devnodes", 1, 64, &ndev)) ||
	    (r = cli_opt_u64(a, "timeout", DEFAULT_UP_TIMEOUT_S, 86400, &timeout_s)))
		return r;
	if (strcmp(accel, "auto") != 0 && strcmp(accel, "kvm") != 0 && strcmp(accel, "tcg") != 0)
		return cli_usage_error(a, "--accel is auto, kvm or tcg, not \"%s\"", accel);
	if (parse_size(pool_s, &pool) < 0 || pool == 0)
		return cli_usage_error(a, "--pool must be a size such as 1G, not \"%s\"", pool_s);
	if (inet_pton(AF_INET, addr, &in) != 1)
		return cli_usage_error(a, "--address must be an IPv4 address such as 127.0.0.1, "
				       "not \"%s\"", addr);
	snprintf(bind, sizeof(bind), "%s:0", addr);

	r = cluster_data_dir(a, &u.dir);
	if (r < 0)
		return cli_err("no data directory: %s", strerror(-r)), CLI_EXIT_ERROR;
	r = mkdir_p(u.dir, 0700);
	if (r < 0) {
		cli_err("cannot create the data directory %s: %s", u.dir, strerror(-r));
		goto out;
	}
	{
		struct stat st;

		/* The key goes there: refuse a directory someone else owns (/tmp/disagg-UID squatted). */
		if (stat(u.dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()) {
			cli_err("%s is not a directory of yours: refusing to put a cluster key there", u.dir);
			goto out;
		}
	}
	lockfd = cluster_lock(u.dir);
	if (lockfd < 0) {
		cli_err("cannot lock %s: %s", u.dir,
			lockfd == -EBUSY ? "another `disagg up` or `down` is running there"
					 : strerror(-lockfd));
		goto out;
	}
	u.key = join(u.dir, "cluster.key");
	u.gkey = join(u.dir, "grant.key");
	u.gpub = join(u.dir, "grant.pub");
	u.tlsdir = join(u.dir, "tls");
	u.ca = join(u.dir, "tls/" CERT_CA_PEM);
	if (!u.tlsdir || !u.ca)
		goto out;
	logdir = join(u.dir, "logs");
	if (!u.key || !u.gkey || !u.gpub || upauth_init(&u.auth, u.dir) < 0 || !logdir ||
	    mkdir_p(logdir, 0700) < 0) {
		cli_err("cannot create %s/logs", u.dir);
		goto out;
	}
	if (up_prepare(&u, a) < 0)
		goto out;
	strftime(u.created, sizeof(u.created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

	u.ncomps = 1 + nmem + ndev + ncomp;
	u.comps = calloc(u.ncomps, sizeof(*u.comps));
	if (!u.comps)
		goto out;
	for (size_t i = 0; i < u.ncomps; i++) {
		struct comp *c = &u.comps[i];

		if (i == 0) {
			c->kind = "orchestrator", c->prog = "disagg-orchestrator", c->node_id = -1;
			snprintf(c->name, sizeof(c->name), "orchestrator");
		} else if (i <= nmem) {
			c->kind = "memnode", c->prog = "disagg-memnode", c->node_id = 100 + (int64_t)i - 1;
			snprintf(c->name, sizeof(c->name), "memnode-%" PRId64, c->node_id);
		} else if (i <= nmem + ndev) {
			c->kind = "devnode", c->prog = "disagg-devnode",
			c->node_id = UPNODE_DEVNODE_BASE + (int64_t)(i - 1 - nmem);
			snprintf(c->name, sizeof(c->name), "devnode-%" PRId64, c->node_id);
		} else {
			c->kind = "compute", c->prog = "disagg-compute",
			c->node_id = 1 + (int64_t)(i - 1 - nmem - ndev);
			snprintf(c->name, sizeof(c->name), "compute-%" PRId64, c->node_id);
		}
		if (asprintf(&c->log, "%s/%s.log", logdir, c->name) < 0) {
			c->log = NULL;
			goto out;
		}
		if (up_cert(&u, c) < 0)
			goto out;
		r = find_program(a->argv0, c->prog, &c->path);
		if (r < 0) {
			cli_err("cannot find %s: not next to %s, not in a build tree, not in PATH "
				"(build it with `make`)", c->prog, a->argv0);
			goto out;
		}
	}

	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	start = now_ns();
	progress_start(&p, "starting the orchestrator");
	deadline = now_ns() + timeout_s * 1000000000ull;
	{
		struct comp *c = &u.comps[0];
		_cleanup_free_ char *db = join(u.dir, "orchestrator.db");
		/* Its own id (towards memory nodes) must differ from every node's: 1000. */
		char *argv[] = { c->path, "--http", bind, "--db", db, "--key", u.key,
				 "--grant-key", u.gkey, "--node-id", UP_ORCHESTRATOR_ID,
				 "--api-tokens", u.auth.tokens, "--node-secret", u.auth.secret,
				 "--tls-ca", u.ca, "--tls-cert", c->tls_cert, "--tls-key", c->tls_key,
				 NULL };

		upauth_fabric_args(cli_flag(a, "fabric-plaintext"), argv);
		if (!db || (r = spawn(c, argv)) < 0) {
			progress_end(&p, false, NULL);
			cli_err("cannot start %s: %s", c->path, strerror(r < 0 ? -r : ENOMEM));
			goto fail;
		}
		up_save(&u);
		if (wait_ready(&u, 0, 1, deadline, &p) < 0)
			goto fail;
		if (asprintf(&u.url, "http://%s", c->addr) < 0) {
			u.url = NULL;
			goto fail;
		}
		up_save(&u);
	}
	progress_end(&p, true, u.url);

	/*
	 * The agents' RAM files must be on tmpfs: DIR/run if DIR is, else their
	 * default, /dev/shm/disagg-compute-CLUSTER-ID, which names this cluster's
	 * key: another cluster on this host never shares (or cleans up) it.
	 */
	if (on_tmpfs(u.dir)) {
		rundir = join(u.dir, "run");
		if (rundir && mkdir_p(rundir, 0700) < 0) {
			free(rundir);
			rundir = NULL;
		}
	}
	progress_start(&p, "starting the nodes");
	for (size_t i = 1; i < u.ncomps; i++) {
		struct comp *c = &u.comps[i];
		_cleanup_free_ char *cred = upauth_node_cred(&u.auth, u.dir, c->node_id);
		struct upnode_conf conf = {
			.dir = u.dir, .key = u.key, .gpub = u.gpub, .url = u.url, .ca = u.ca,
			.rundir = rundir, .accel = accel, .bind = bind, .pool = pool,
			.persistent = cli_flag(a, "persistent"),
			.plaintext = cli_flag(a, "fabric-plaintext"),
		};
		char **argv;

		if (!cred || upnode_prepare(&conf, c->kind, c->node_id) < 0)
			goto fail;
		argv = upnode_argv(&conf, c->kind, c->path, c->node_id, cred, c->tls_cert,
				   c->tls_key);
		r = argv ? spawn(c, argv) : -ENOMEM;
		upnode_argv_free(argv);
		if (r < 0) {
			progress_end(&p, false, NULL);
			cli_err("cannot start %s: %s", c->path, strerror(-r));
			goto fail;
		}
		up_save(&u);
	}
	if (wait_ready(&u, 1, u.ncomps, deadline, &p) < 0 || wait_nodes_up(&u, deadline, &p) < 0) {
		progress_end(&p, false, NULL);
		goto fail;
	}
	progress_end(&p, true, NULL);
	up_save(&u);
	if (a->json) {
		_cleanup_(json_decrefp) json_t *cl = NULL;

		if (cluster_load(u.dir, &cl) == 0)
			print_json(cl);
	} else {
		print_up_summary(&u, a, (double)(now_ns() - start) / 1e9);
	}
	ret = CLI_EXIT_OK;
	goto restore;

fail:
	progress_end(&p, false, NULL);
	if (interrupted)
		cli_err("interrupted");
	fprintf(stderr, "stopping what was started; the logs stay in %s\n", logdir);
	up_stop_all(&u);
	{
		_cleanup_free_ char *cj = join(u.dir, "cluster.json");

		if (cj)
			unlink(cj);
	}
restore:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
out:
	up_free(&u);
	return ret;
}

