// SPDX-License-Identifier: MIT
/*
 * disagg-compute: the compute node agent. Parses options, finds QEMU, the
 * shim and the guest image, takes its run directory (rundir.c), adopts the
 * VMs an earlier instance of it left running (vm/recover.c), picks the
 * accelerator, serves the HTTP control API and runs until SIGTERM/SIGINT.
 * Then it leaves its running VMs running for the next agent, or stops
 * every VM with --stop-vms-on-exit. Options and API: docs/compute.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "accel.h"
#include "agent.h"
#include "ext.h"
#include "health.h"
#include "jsonhttp.h"
#include "log.h"
#include "opts.h"
#include "net.h"
#include "notify.h"
#include "mnclient.h"
#include "tls.h"
#include "recover.h"
#include "registrar.h"
#include "rundir.h"
#include "state.h"
#include "vm_cpus.h"
#include "vm_incoming.h"
#include "vm_migrate.h"
#include "vm_ctl.h"
#include "vm_replica.h"
#include "vm_disk.h"
#include "vm_disk_mig.h"
#include "vm_strict.h"

static const char usage[] =
	"Usage: disagg-compute --key FILE --node-id ID [options]\n"
	"\n"
	"  --http HOST:PORT       control API (default 127.0.0.1:7200; port 0 picks one)\n"
	"  --key FILE             cluster key (32 bytes, mode 0600)\n"
	"  --node-id ID           this compute node's id (grants name it)\n"
	FABRIC_HELP
	"  --run-dir DIR          tmpfs directory for VM run dirs, this agent's alone\n"
	"                         (default /dev/shm/disagg-compute-CLUSTER-ID)\n"
	"  --qemu PATH            QEMU binary (default qemu-system-x86_64 in PATH)\n"
	"  --shim PATH            libdisagg-shim.so (default: next to this program, or\n"
	"                         where it is installed, " DISAGG_PKGLIBDIR ")\n"
	"  --kernel PATH          guest kernel (default: build/guest/vmlinuz near this program)\n"
	"  --initrd PATH          guest initramfs (default: build/guest/initrd.img)\n"
	"  --accel auto|kvm|tcg   accelerator (default auto: kvm if a probe guest boots under it)\n"
	"  --section-size SIZE    memory section size (default 128M)\n"
	"  --orchestrator URL     register with the orchestrator and send heartbeats\n"
	"  --name NAME            node name shown by the orchestrator (default compute-ID)\n"
	"  --label KEY=VALUE      node label for placement constraints (repeatable)\n"
	"  --advertise HOST:PORT  the API address the orchestrator should use (default: --http)\n"
	"  --node-credential FILE this node's credential (disagg-grant --node-credential),\n"
	"                         mode 0600: register with it, and take API requests from\n"
	"                         the orchestrator only. Required unless --api-open\n"
	APIAUTH_OPEN_HELP
	"  --metrics-tokens FILE  tokens (one a line, mode 0600) that may also read /metrics\n"
	"  --http-cert FILE       serve the API over HTTPS with this PEM certificate ...\n"
	"  --http-key FILE        ... and this PEM private key\n"
	"  --http-ca FILE         CA certificate (PEM) that an https:// --orchestrator must\n"
	"                         verify against (default: the system's)\n"
	"  --vcpus N              vCPUs this node offers to slots (default 8 per host CPU)\n"
	"  --vcpu-cpus LIST       run every VM's vCPU threads on these host CPUs (\"2-7\";\n"
	"                         libvirt's vcpupin; default: where the scheduler puts them)\n"
	"  --housekeeping-cpus LIST  run this agent's threads and QEMU's other threads\n"
	"                         (main loop, I/O) on these CPUs (libvirt's emulatorpin)\n"
	"  --retire-migrated-ms MS  stop the paused QEMU of a VM that migrated away if its\n"
	"                         record is not deleted within MS (default 30000)\n"
	"  --on-memnode-failure pause|kill|sigbus\n"
	"                         a memory node that does not answer: pause the VM until it\n"
	"                         does (default), fail it, or SIGBUS the faulting thread\n"
	"  --memnode-timeout-ms MS  a fetch stalled this long marks its memory node down\n"
	"  --writeback-delay-ms MS  background write-back of pages dirty this long (default\n"
	"                           1000; 0: off, dirty pages wait for eviction or a flush)\n"
	"                         (default 2000)\n"
	"  --ssh-forward-addr ADDR  IPv4 address of the host end of each VM's ssh\n"
	"                         forward (user network; default 127.0.0.1, 0.0.0.0: all)\n"
	"  --stop-vms-on-exit     stop every VM at SIGTERM/SIGINT (default: leave running\n"
	"                         VMs to the next agent on this run directory)\n"
	"  --log-level LEVEL      error, warn, info, debug\n";

static volatile sig_atomic_t quit;
static int quit_efd = -1;

/*
 * Any thread may take the signal (the agent has many): the eventfd wakes
 * the main thread wherever the handler ran.
 */
static void on_signal(int sig)
{
	uint64_t one = 1;
	int saved = errno;

	quit = sig;
	(void)!write(quit_efd, &one, sizeof(one));
	errno = saved;
}

/* dir/rel into ret if it fits and is accessible (mode: access()). */
static bool try_path(const char *dir, const char *rel, int mode, char *ret, size_t len)
{
	int n = snprintf(ret, len, "%s/%s", dir, rel);

	return n > 0 && (size_t)n < len && access(ret, mode) == 0;
}

/* A file next to our own executable (following symlinks), or under a directory above it. */
static bool find_near_exe(const char *rel, char *ret, size_t len)
{
	char exe[PATH_MAX], *dir;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return false;
	exe[n] = '\0';
	dir = dirname(exe);
	for (int up = 0; up < 4; up++) {
		if (try_path(dir, rel, R_OK, ret, len))
			return true;
		dir = dirname(dir);
	}
	return false;
}

static bool find_in_path(const char *name, char *ret, size_t len)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *buf = strdup(path ? path : "/usr/bin:/bin");
	char *save = NULL;

	if (!buf)
		return false;
	for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save))
		if (try_path(d, name, X_OK, ret, len))
			return true;
	return false;
}

/* The options that name a file or directory, each into its PATH_MAX buffer. */
struct path_opt {
	int c;
	const char *name;
	char *buf;
};

/* Option c's argument into its buffer: -ENAMETOOLONG (reported) if it does not fit. */
static int path_opt_set(const struct path_opt *t, size_t n, int c, const char *arg)
{
	size_t len = strlen(arg);

	for (size_t i = 0; i < n; i++) {
		if (t[i].c != c)
			continue;
		if (len >= PATH_MAX) {
			fprintf(stderr, "disagg-compute: --%s is too long (%zu bytes, at most %d)\n",
				t[i].name, len, PATH_MAX - 1);
			return -ENAMETOOLONG;
		}
		memcpy(t[i].buf, arg, len + 1);
		return 0;
	}
	return -EINVAL;
}

/* vm_recover callback: an adopted VM joins the table. */
static int agent_adopted(void *opaque, struct vm *vm)
{
	struct agent *a = opaque;
	int r = -ENOSPC;

	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS && r < 0; i++)
		if (!a->vms[i]) {
			a->vms[i] = vm;
			r = 0;
		}
	pthread_mutex_unlock(&a->lock);
	return r;
}

/* Exit without stopping the running VMs: the next agent adopts them. */
static void agent_leave(struct agent *a)
{
	unsigned n = 0;

	http_server_stop(a->http);   /* no request holds a VM any more */
	a->http = NULL;
	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS; i++)
		if (a->vms[i] && vm_get_state(a->vms[i]) == VM_RUNNING) {
			vm_detach(a->vms[i]);
			a->vms[i] = NULL;
			n++;
		}
	pthread_mutex_unlock(&a->lock);
	if (n)
		log_info("%u VM%s left running for the next agent", n, n == 1 ? "" : "s");
	agent_shutdown(a);   /* the others (failed, migrated away ...) go */
}

/* [{"name", "state"[, "reason"], ...}] of every VM, for heartbeats (new reference). */
static json_t *vm_states(struct agent *a)
{
	json_t *arr = json_array();

	pthread_mutex_lock(&a->lock);
	for (unsigned i = 0; i < AGENT_MAX_VMS && arr; i++)
		if (a->vms[i]) {
			json_t *b = vm_brief(a->vms[i]);

			vm_replicas_brief(a->vms[i], b);   /* replicated sections taken out */
			json_array_append_new(arr, b);
		}
	pthread_mutex_unlock(&a->lock);
	return arr;
}

/* Registrar callback: what changes between heartbeats: each VM's brief. */
static void agent_fill_heartbeat(void *opaque, json_t *body)
{
	json_object_set_new(body, "vms", json_integer(agent_vm_count(opaque)));
	json_object_set_new(body, "vm_states", vm_states(opaque));
}

/* vm_env.on_state: a VM changed state by itself; tell the orchestrator now. */
static void agent_vm_changed(void *opaque)
{
	struct agent *a = opaque;

	registrar_kick(atomic_load(&a->reg));
}

enum { OPT_VCPU_CPUS = 0x4701, OPT_HOUSE_CPUS };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "http", required_argument, NULL, 'H' },
		{ "key", required_argument, NULL, 'k' },
		{ "node-id", required_argument, NULL, 'n' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "qemu", required_argument, NULL, 'q' },
		{ "shim", required_argument, NULL, 's' },
		{ "kernel", required_argument, NULL, 'K' },
		{ "initrd", required_argument, NULL, 'I' },
		{ "accel", required_argument, NULL, 'a' },
		{ "section-size", required_argument, NULL, 'S' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "orchestrator", required_argument, NULL, 'O' },
		{ "name", required_argument, NULL, 'N' },
		{ "label", required_argument, NULL, 'L' },
		{ "advertise", required_argument, NULL, 'A' },
		{ "vcpus", required_argument, NULL, 'V' },
		{ "vcpu-cpus", required_argument, NULL, OPT_VCPU_CPUS },
		{ "housekeeping-cpus", required_argument, NULL, OPT_HOUSE_CPUS },
		{ "retire-migrated-ms", required_argument, NULL, 'R' },
		{ "on-memnode-failure", required_argument, NULL, 'F' },
		{ "memnode-timeout-ms", required_argument, NULL, 'T' },
		{ "writeback-delay-ms", required_argument, NULL, 'W' },
		{ "stop-vms-on-exit", no_argument, NULL, 'X' },
		{ "ssh-forward-addr", required_argument, NULL, 'G' },
		{ "node-credential", required_argument, NULL, 'c' },
		{ "metrics-tokens", required_argument, NULL, 'M' },
		APIAUTH_OPEN_OPTION,
		{ "http-cert", required_argument, NULL, 'E' },
		{ "http-key", required_argument, NULL, 'Y' },
		{ "http-ca", required_argument, NULL, 'Z' },
		FABRIC_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *http = "127.0.0.1:7200", *keyfile = NULL, *accel = "auto";
	char run_dir[PATH_MAX] = "", qemu[PATH_MAX] = "", shim[PATH_MAX] = "";
	char kernel[PATH_MAX] = "", initrd[PATH_MAX] = "";
	struct auth_key key;
	struct fabric_conf fabric = { 0 };
	struct tls_ctx *tls = NULL;
	struct agent a = { 0 };
	uint64_t node_id = 0, section = 128ull << 20, retire_ms = VM_RETIRE_MS;
	uint64_t memnode_timeout_ms = 2000, wb_delay_ms = 1000;
	enum vm_memnode_policy policy = VM_MEMNODE_PAUSE;
	struct sigaction sa = { .sa_handler = on_signal };
	const char *orchestrator = NULL, *name = NULL, *advertise = NULL, *ssh_fwd = NULL;
	const char *cred_file = NULL, *metrics_tokens = NULL, *http_cert = NULL;
	bool api_open = false;
	const char *http_key = NULL, *http_ca = NULL;
	_cleanup_(json_decrefp) json_t *labels = json_object();   /* freed on every return */
	struct registrar *reg = NULL;
	long vcpus = 8 * sysconf(_SC_NPROCESSORS_ONLN);
	char cluster_id[RUNDIR_CLUSTER_ID_LEN + 1], err[1024];
	bool stop_vms = false, default_dir = false, has_vcpu = false, has_house = false;
	cpu_set_t vcpu_cpus, house_cpus;
	struct vm_recover_stats rs;
	const struct path_opt popts[] = {
		{ 'r', "run-dir", run_dir }, { 'q', "qemu", qemu }, { 's', "shim", shim },
		{ 'K', "kernel", kernel }, { 'I', "initrd", initrd },
	};
	int c, r, lockfd;

	log_init(argv[0]);
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &fabric))
			continue;
		switch (c) {
		case 'H': http = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'n':
			if (opt_node_id(optarg, &node_id) < 0)
				return 2;
			break;
		case 'r':
		case 'q':
		case 's':
		case 'K':
		case 'I':
			if (path_opt_set(popts, ARRAY_SIZE(popts), c, optarg) < 0)
				return 2;
			break;
		case 'R':
			if (opt_u64("retire-migrated-ms", optarg, 1, 86400000, "ms", &retire_ms) < 0)
				return 2;
			break;
		case 'F':
			if (vm_memnode_policy_parse(optarg, &policy) < 0) {
				fprintf(stderr, "disagg-compute: --on-memnode-failure must be pause, kill or sigbus\n");
				return 2;
			}
			break;
		case 'T':
			if (opt_u64("memnode-timeout-ms", optarg, 100, 600000, "ms",
				    &memnode_timeout_ms) < 0)
				return 2;
			break;
		case 'W':
			if (opt_u64("writeback-delay-ms", optarg, 0, 3600000, "ms", &wb_delay_ms) < 0)
				return 2;
			break;
		case 'X': stop_vms = true; break;
		case OPT_VCPU_CPUS:
			if (opt_cpus("vcpu-cpus", optarg, &vcpu_cpus) < 0)
				return 2;
			has_vcpu = true;
			break;
		case OPT_HOUSE_CPUS:
			if (opt_cpus("housekeeping-cpus", optarg, &house_cpus) < 0)
				return 2;
			has_house = true;
			break;
		case 'a': accel = optarg; break;
		case 'G':
			if (inet_pton(AF_INET, optarg, &(struct in_addr){ 0 }) != 1) {
				fprintf(stderr, "disagg-compute: --ssh-forward-addr %s: not an IPv4 address\n",
					optarg);
				return 2;
			}
			ssh_fwd = optarg;
			break;
		case 'S':
			if (opt_size("section-size", optarg, 2u << 20, &section) < 0)
				return 2;
			break;
		case 'l':
			if (log_set_level_str(optarg) < 0) {
				fprintf(stderr, "disagg-compute: unknown log level %s\n", optarg);
				return 2;
			}
			break;
		case 'O': orchestrator = optarg; break;
		case 'c': cred_file = optarg; break;
		case 'M': metrics_tokens = optarg; break;
		case APIAUTH_OPT_OPEN: api_open = true; break;
		case 'E': http_cert = optarg; break;
		case 'Y': http_key = optarg; break;
		case 'Z': http_ca = optarg; break;
		case 'N': name = optarg; break;
		case 'A': advertise = optarg; break;
		case 'V':
			vcpus = strtol(optarg, NULL, 10);
			if (vcpus < 1 || vcpus > 4096) {
				fprintf(stderr, "disagg-compute: --vcpus must be 1..4096\n");
				return 2;
			}
			break;
		case 'L': {
			char *eq = strchr(optarg, '=');

			if (!eq || eq == optarg) {
				fprintf(stderr, "disagg-compute: --label takes KEY=VALUE\n");
				return 2;
			}
			*eq = '\0';
			json_object_set_new(labels, optarg, json_string(eq + 1));
			break;
		}
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (!keyfile || node_id == 0) {
		fprintf(stderr, "disagg-compute: --key and a nonzero --node-id are required\n\n%s", usage);
		return 2;
	}
	if (fabric_conf_check(&fabric) < 0)
		return 2;
	/* Before any thread: the agent's threads and its QEMUs inherit the set. */
	r = vm_cpus_configure(has_vcpu ? &vcpu_cpus : NULL, has_house ? &house_cpus : NULL);
	if (r < 0) {
		fprintf(stderr, "disagg-compute: --housekeeping-cpus: %s\n", strerror(-r));
		return 1;
	}
	if (tls_ctx_new(&fabric, CERT_ROLE_COMPUTE, node_id, &tls) < 0)
		return 1;
	mnc_set_tls(tls);         /* every fabric connection: memory nodes, device nodes */
	r = auth_key_load(keyfile, &key);
	if (r < 0) {
		fprintf(stderr, "disagg-compute: cannot load cluster key %s: %s%s\n", keyfile,
			strerror(-r), auth_key_hint(r));
		return 1;
	}
	if (!http_cert != !http_key) {
		fprintf(stderr, "disagg-compute: --http-cert and --http-key go together\n");
		return 2;
	}
	if (apiauth_node_setup(&a.auth, cred_file, metrics_tokens, node_id, http, api_open) < 0)
		return 1;
	if (strcmp(accel, "auto") && strcmp(accel, "kvm") && strcmp(accel, "tcg")) {
		fprintf(stderr, "disagg-compute: --accel must be auto, kvm or tcg\n");
		return 2;
	}
	if (!qemu[0] && !find_in_path("qemu-system-x86_64", qemu, sizeof(qemu))) {
		fprintf(stderr, "disagg-compute: qemu-system-x86_64 not found (install qemu-system-x86 or pass --qemu)\n");
		return 1;
	}
	if (!shim[0] && !find_near_exe("libdisagg-shim.so", shim, sizeof(shim)) &&
	    !find_near_exe("shim/libdisagg-shim.so", shim, sizeof(shim)) &&
	    !find_near_exe("bin/libdisagg-shim.so", shim, sizeof(shim)) &&
	    !find_near_exe("lib/libdisagg-shim.so", shim, sizeof(shim)) &&
	    !find_near_exe(DISAGG_BIN_TO_PKGLIB "/libdisagg-shim.so", shim, sizeof(shim)) &&
	    !try_path(DISAGG_PKGLIBDIR, "libdisagg-shim.so", R_OK, shim, sizeof(shim))) {
		fprintf(stderr, "disagg-compute: libdisagg-shim.so not found (pass --shim)\n");
		return 1;
	}
	if (!kernel[0] && !find_near_exe("guest/vmlinuz", kernel, sizeof(kernel)))
		snprintf(kernel, sizeof(kernel), "build/guest/vmlinuz");
	if (!initrd[0] && !find_near_exe("guest/initrd.img", initrd, sizeof(initrd)))
		snprintf(initrd, sizeof(initrd), "build/guest/initrd.img");
	if (access(kernel, R_OK) || access(initrd, R_OK)) {
		fprintf(stderr, "disagg-compute: guest image %s / %s not found (scripts/build-guest.sh, or --kernel/--initrd)\n",
			kernel, initrd);
		return 1;
	}
	/* The run directory names the cluster: two clusters on one host never share one. */
	if (rundir_cluster_id(&key, cluster_id) < 0) {
		fprintf(stderr, "disagg-compute: cannot derive the cluster's fingerprint from its key\n");
		return 1;
	}
	if (!run_dir[0]) {
		rundir_default(cluster_id, node_id, run_dir, sizeof(run_dir));
		default_dir = true;
	}
	if (!vm_name_room(run_dir)) {
		fprintf(stderr, "disagg-compute: the run directory %s is too long: the sockets of its VMs (RUN_DIR/NAME/guest.sock) would not fit a UNIX socket address (107 bytes)\n",
			run_dir);
		return 1;
	}
	lockfd = rundir_claim(run_dir, cluster_id, node_id, err, sizeof(err));
	if (lockfd < 0) {
		fprintf(stderr, "disagg-compute: %s\n", err);
		return 1;
	}

	a.env = (struct vm_env){
		.run_root = run_dir, .qemu = qemu, .shim = shim, .kernel = kernel,
		.initrd = initrd, .section_size = section, .key = &key, .node_id = node_id,
		.retire_ms = retire_ms, .memnode_policy = policy,
		.memnode_timeout_ms = (int)memnode_timeout_ms, .on_state = agent_vm_changed,
		.writeback_delay_ms = wb_delay_ms ? (int)wb_delay_ms : -1,
		.on_region_control = vm_ctl_request,
		.on_replica = vm_replicas_sync,
		.opaque = &a, .ssh_forward_addr = ssh_fwd,
	};
	/* Guests that lock a shared region through its control pages (vm_ctl.c). */
	if (vm_ctl_start(&a.reg, node_id) < 0) {
		fprintf(stderr, "disagg-compute: cannot start the region-lock thread\n");
		return 1;
	}
	/*
	 * The features that hear of the VM lifecycle's steps (vm/ext.h), before
	 * any VM exists (adoption below already needs them): the migration
	 * record (heartbeats, status, its threads) and an incoming VM's QEMU
	 * arguments.
	 */
	if (vm_ext_register(&vm_mig_ext) < 0 || vm_ext_register(&vm_incoming_ext) < 0 ||
	    vm_ext_register(&vm_strict_ext) < 0 || vm_ext_register(&vm_disk_ext) < 0 ||
	    vm_ext_register(&vm_disk_mig_ext) < 0 || vm_ext_register(&vm_cpus_ext) < 0) {
		fprintf(stderr, "disagg-compute: cannot register the migration hooks\n");
		return 1;
	}
	a.env.accel = strcmp(accel, "auto") ? accel : vm_probe_accel(&a.env);
	a.started_ns = now_ns();
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.bg_cond, NULL);
	/* Ours alone: what is there, an earlier instance of this agent left. */
	(void)vm_recover(&a.env, agent_adopted, &a, &rs);

	quit_efd = eventfd(0, EFD_CLOEXEC);
	if (quit_efd < 0) {
		fprintf(stderr, "disagg-compute: eventfd: %s\n", strerror(errno));
		return 1;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	a.orch_ca = http_ca;
	r = agent_http_start(&a, http, http_cert, http_key);
	if (r < 0) {
		fprintf(stderr, "disagg-compute: cannot serve HTTP%s on %s: %s\n",
			http_cert ? "S" : "", http, strerror(-r));
		agent_leave(&a);
		rundir_release(run_dir, lockfd, default_dir);
		return 1;
	}
	printf("disagg-compute listening on %s accel %s\n", http_server_addr(a.http), a.env.accel);
	fflush(stdout);
	if (orchestrator) {
		char defname[64];
		json_t *body;

		snprintf(defname, sizeof(defname), "compute-%llu", (unsigned long long)node_id);
		body = json_pack("{s:I, s:s, s:s, s:s, s:O, s:I}", "node_id", (json_int_t)node_id,
				 "kind", "compute", "name", name ? name : defname, "http",
				 advertise ? advertise : http_server_addr(a.http), "labels", labels,
				 "vcpus", (json_int_t)vcpus);
		r = body ? registrar_start_auth(orchestrator, body, agent_fill_heartbeat, &a,
					       a.auth.on ? a.auth.bearer : NULL, http_ca, &reg)
			 : -ENOMEM;
		json_decref(body);
		atomic_store(&a.reg, reg);
		if (r < 0) {
			log_error("cannot start the registrar: %s", strerror(-r));
			agent_leave(&a);
			rundir_release(run_dir, lockfd, default_dir);
			return 1;
		}
	}
	log_info("node %llu: accel %s, run dir %s, qemu %s, shim %s, %u VM%s adopted",
		 (unsigned long long)node_id, a.env.accel, run_dir, qemu, shim, rs.adopted,
		 rs.adopted == 1 ? "" : "s");
	notify_ready();   /* VMs adopted, the API served */

	while (!quit) {
		struct pollfd pfd = { .fd = quit_efd, .events = POLLIN };

		(void)poll(&pfd, 1, -1);
	}
	log_info("stopping (signal %d)", (int)quit);
	notify_stopping();
	atomic_store(&a.reg, NULL);
	vm_ctl_stop();
	registrar_stop(reg);
	if (stop_vms)
		agent_shutdown(&a);
	else
		agent_leave(&a);
	rundir_release(run_dir, lockfd, default_dir);
	pthread_cond_destroy(&a.bg_cond);
	pthread_mutex_destroy(&a.lock);
	apiauth_node_clear(&a.auth);
	mnc_set_tls(NULL);
	tls_ctx_free(tls);
	return 0;
}
