// SPDX-License-Identifier: MIT
/*
 * What a new VM boots (vm_boot.h).
 *
 * Kernel and initramfs: a path on this node, or an http(s) URL (the
 * orchestrator's GET /v1/images/NAME/kernel|initrd), fetched with the
 * node's bearer token into RUN_ROOT/boot-cache/. A cached file is named
 * after the URL's last two path components (the image's name and the
 * part) and the size the server announces (HEAD), so that an image
 * imported again under the same name with another size is fetched again.
 * A file is written to a temporary name and renamed when whole.
 *
 * The cloud-init seed: meta-data (instance-id, local-hostname) and
 * user-data (a #cloud-config with the ssh keys, or the caller's text
 * verbatim) in a 1 MiB vfat image labelled "cidata", made with
 * mkfs.vfat -C and mcopy (dosfstools, mtools). The same input makes the
 * same bytes on any node (the destination of a compute migration makes
 * the seed again, vm_boot_mig.c): mkfs.vfat --invariant (dosfstools 4.2;
 * an older one makes it without, its volume serial then differs) and the
 * files' times fixed (SEED_MTIME, kept by mcopy -m).
 */
#include "vm_boot.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jsonhttp.h"
#include "log.h"
#include "macro.h"
#include "rundir.h"
#include "vm_internal.h"

#define FETCH_TIMEOUT_MS 300000L
#define SEED_USER_DATA_MAX 65536
#define SEED_MTIME 946684800        /* 2000-01-01 UTC: the seed's files' time */

extern char **environ;

static bool is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

static void curl_common(CURL *c, const struct vm_boot_fetch *f, const char *url,
			struct curl_slist *hdrs)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, FETCH_TIMEOUT_MS);
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (f->cafile)
		curl_easy_setopt(c, CURLOPT_CAINFO, f->cafile);
}

/* The cache's name for url of size bytes: "IMAGE-PART-SIZE" of [A-Za-z0-9._-]. */
static void cache_leaf(const char *url, curl_off_t size, char *ret, size_t n)
{
	const char *end = url + strlen(url), *p = end;
	char raw[200];
	int slashes = 0;

	while (p > url && slashes < 2)
		if (*--p == '/')
			slashes++;
	snprintf(raw, sizeof(raw), "%s", p + 1);
	for (char *q = raw; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= '0' && *q <= '9') || *q == '.' || *q == '_' || *q == '-'))
			*q = '-';
	snprintf(ret, n, "%s-%" PRId64, raw, (int64_t)size);
}

static int fetch(const struct vm_boot_fetch *f, const char *url, char *ret, size_t retlen,
		 char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL;
	char authz[300], dir[PATH_MAX], leaf[256], tmp[PATH_MAX + 16];
	curl_off_t size = -1;
	long status = 0;
	CURLcode cc;
	FILE *out;
	CURL *c;
	int r = 0;

	if (f->bearer && f->bearer[0]) {
		snprintf(authz, sizeof(authz), "Authorization: Bearer %s", f->bearer);
		hdrs = curl_slist_append(NULL, authz);
	}
	c = curl_easy_init();
	if (!c) {
		curl_slist_free_all(hdrs);
		snprintf(err, errlen, "cannot fetch %s: out of memory", url);
		return -ENOMEM;
	}
	/* HEAD: the size names the cached copy. */
	curl_common(c, f, url, hdrs);
	curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_OK && status == 200)
		curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &size);
	if (cc != CURLE_OK || status != 200 || size <= 0) {
		snprintf(err, errlen, "cannot fetch %s: %s", url,
			 cc != CURLE_OK ? curl_easy_strerror(cc) : status != 200 ? "HTTP error"
									    : "no size");
		if (cc == CURLE_OK && status != 200)
			snprintf(err, errlen, "cannot fetch %s: HTTP %ld", url, status);
		r = -EIO;
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s/" RUNDIR_BOOT_CACHE, f->run_root);
	(void)mkdir(dir, 0700);
	cache_leaf(url, size, leaf, sizeof(leaf));
	if ((size_t)snprintf(ret, retlen, "%s/%s", dir, leaf) >= retlen) {
		snprintf(err, errlen, "the run directory is too long");
		r = -ENAMETOOLONG;
		goto out;
	}
	if (access(ret, R_OK) == 0)
		goto out;   /* cached */
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", ret, (int)gettid());
	out = fopen(tmp, "wbe");
	if (!out) {
		r = -errno;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
		goto out;
	}
	curl_easy_reset(c);
	curl_common(c, f, url, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	cc = curl_easy_perform(c);
	status = 0;
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (fclose(out) != 0 && cc == CURLE_OK)
		cc = CURLE_WRITE_ERROR;
	if (cc != CURLE_OK || status != 200) {
		if (cc != CURLE_OK)
			snprintf(err, errlen, "cannot fetch %s: %s", url, curl_easy_strerror(cc));
		else
			snprintf(err, errlen, "cannot fetch %s: HTTP %ld", url, status);
		(void)unlink(tmp);
		r = -EIO;
		goto out;
	}
	if (rename(tmp, ret) < 0) {
		r = -errno;
		(void)unlink(tmp);
		snprintf(err, errlen, "cannot keep %s: %s", ret, strerror(-r));
		goto out;
	}
	log_info("fetched %s (%" PRId64 " bytes) into %s", url, (int64_t)size, ret);
out:
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return r;
}

/* A path or URL into ret (a path on this node). */
static int boot_file(const struct vm_boot_fetch *f, json_t *v, const char *what, char *ret,
		     size_t retlen, char *err, size_t errlen)
{
	const char *s = json_string_value(v);

	if (!s || !*s || strlen(s) >= retlen) {
		snprintf(err, errlen, "\"boot\": \"%s\" must be a path or an http(s) URL of at "
			 "most %zu characters", what, retlen - 1);
		return -EINVAL;
	}
	if (is_url(s))
		return fetch(f, s, ret, retlen, err, errlen);
	if (s[0] != '/') {
		snprintf(err, errlen, "\"boot\": \"%s\" must be an absolute path or a URL", what);
		return -EINVAL;
	}
	if (access(s, R_OK) < 0) {
		snprintf(err, errlen, "\"boot\": %s %s: %s", what, s, strerror(errno));
		return -EINVAL;
	}
	snprintf(ret, retlen, "%s", s);
	return 0;
}

int vm_boot_parse(const struct vm_boot_fetch *f, json_t *boot, struct vm_spec *spec,
		  char *err, size_t errlen)
{
	static const char *const keys[] = { "kernel", "initrd", "append", "guest_agent",
					    "firmware", NULL };
	json_t *app, *v;
	const char *k;
	char buf[sizeof(spec->append)];
	int r;

	if (!boot)
		return 0;
	if (!json_is_object(boot)) {
		snprintf(err, errlen, "\"boot\" must be an object {\"kernel\", \"initrd\", \"append\"}");
		return -EINVAL;
	}
	if (json_check_keys(boot, keys, &k) < 0) {
		snprintf(err, errlen, "\"boot\": unknown member \"%s\"", k);
		return -EINVAL;
	}
	v = json_object_get(boot, "firmware");
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "\"boot\": \"firmware\" must be true or false");
		return -EINVAL;
	}
	/* The firmware boots the first disk (its own boot loader): no kernel of ours. */
	spec->firmware = json_is_true(v);
	if (spec->firmware && (json_object_get(boot, "kernel") || json_object_get(boot, "initrd") ||
			       json_object_get(boot, "append"))) {
		snprintf(err, errlen, "\"boot\": \"firmware\" boots the first disk's own boot "
			 "loader: no \"kernel\", \"initrd\" or \"append\" with it");
		return -EINVAL;
	}
	if (!spec->firmware && !json_object_get(boot, "kernel")) {
		snprintf(err, errlen, "\"boot\": \"kernel\" (or \"firmware\": true) is required");
		return -EINVAL;
	}
	v = json_object_get(boot, "guest_agent");
	if (v && !json_is_boolean(v)) {
		snprintf(err, errlen, "\"boot\": \"guest_agent\" must be true or false");
		return -EINVAL;
	}
	/* An image's own kernel runs no disagg-guest: the VM runs once QEMU is up. */
	spec->no_guest = !json_is_true(v);
	app = json_object_get(boot, "append");
	if (app && !json_is_string(app)) {
		snprintf(err, errlen, "\"boot\": \"append\" must be a string");
		return -EINVAL;
	}
	if (app) {
		/* The boot's command line first, then the request's own "append". */
		if ((size_t)snprintf(buf, sizeof(buf), "%s%s%s", json_string_value(app),
				     spec->append[0] ? " " : "", spec->append) >= sizeof(buf)) {
			snprintf(err, errlen, "\"boot\": \"append\" is too long");
			return -EINVAL;
		}
		memcpy(spec->append, buf, sizeof(buf));
	}
	if (spec->firmware)
		return 0;
	r = boot_file(f, json_object_get(boot, "kernel"), "kernel", spec->kernel,
		      sizeof(spec->kernel), err, errlen);
	if (r == 0 && json_object_get(boot, "initrd"))
		r = boot_file(f, json_object_get(boot, "initrd"), "initrd", spec->initrd,
			      sizeof(spec->initrd), err, errlen);
	return r;   /* without "initrd", the kernel boots without one */
}

/* ---- cloud-init ------------------------------------------------------------------ */

static bool hostname_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 63)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return false;
	return true;
}

int vm_boot_cloud_init_check(json_t *ci, char *err, size_t errlen)
{
	static const char *const keys[] = { "hostname", "ssh_authorized_keys", "user_data", NULL };
	json_t *v, *keys_j, *ud;
	const char *k;
	size_t i;

	if (!ci)
		return 0;
	if (!json_is_object(ci)) {
		snprintf(err, errlen, "\"cloud_init\" must be an object");
		return -EINVAL;
	}
	if (json_check_keys(ci, keys, &k) < 0) {
		snprintf(err, errlen, "\"cloud_init\": unknown member \"%s\"", k);
		return -EINVAL;
	}
	v = json_object_get(ci, "hostname");
	if (v && !hostname_ok(json_string_value(v))) {
		snprintf(err, errlen, "\"cloud_init\": \"hostname\" must be 1 to 63 characters of "
			 "[A-Za-z0-9.-]");
		return -EINVAL;
	}
	keys_j = json_object_get(ci, "ssh_authorized_keys");
	if (keys_j && (!json_is_array(keys_j) || json_array_size(keys_j) > 64)) {
		snprintf(err, errlen, "\"cloud_init\": \"ssh_authorized_keys\" must be an array "
			 "of at most 64 keys");
		return -EINVAL;
	}
	json_array_foreach(keys_j, i, v) {
		const char *s = json_string_value(v);

		if (!s || !*s || strlen(s) > 16384 || strpbrk(s, "\n\r\"\\")) {
			snprintf(err, errlen, "\"cloud_init\": ssh key %zu must be one line of at "
				 "most 16384 characters, without quotes or backslashes", i);
			return -EINVAL;
		}
	}
	ud = json_object_get(ci, "user_data");
	if (ud && (!json_is_string(ud) || json_string_length(ud) > SEED_USER_DATA_MAX)) {
		snprintf(err, errlen, "\"cloud_init\": \"user_data\" must be a string of at most "
			 "%d bytes", SEED_USER_DATA_MAX);
		return -EINVAL;
	}
	if (ud && keys_j) {
		snprintf(err, errlen, "\"cloud_init\": give \"ssh_authorized_keys\" or "
			 "\"user_data\" (which then holds the keys), not both");
		return -EINVAL;
	}
	return 0;
}

/* text into path, its times SEED_MTIME. */
static int write_file(const char *path, const char *text)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const struct timespec t[2] = { { .tv_sec = SEED_MTIME }, { .tv_sec = SEED_MTIME } };
	size_t n = strlen(text);

	if (fd < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n)
		return -EIO;
	return futimens(fd, t) < 0 ? -errno : 0;
}

/* Run argv (its output dropped), wait: 0 if it exited 0. */
static int run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, r;

	/* Their chatter (mkfs.fat's banner and warnings) stays out of the agent's log. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -r;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static char *user_data_text(json_t *ci)
{
	json_t *ud = json_object_get(ci, "user_data"), *keys = json_object_get(ci, "ssh_authorized_keys");
	size_t cap = 64, len = 0, i;
	char *s;
	json_t *v;

	if (ud)
		return strdup(json_string_value(ud));
	json_array_foreach(keys, i, v)
		cap += strlen(json_string_value(v)) + 16;
	s = malloc(cap);
	if (!s)
		return NULL;
	len = (size_t)snprintf(s, cap, "#cloud-config\n");
	if (json_array_size(keys))
		len += (size_t)snprintf(s + len, cap - len, "ssh_authorized_keys:\n");
	json_array_foreach(keys, i, v)
		len += (size_t)snprintf(s + len, cap - len, "  - \"%s\"\n", json_string_value(v));
	return s;
}

int vm_boot_cloud_init(struct vm *vm, json_t *ci, char *err, size_t errlen)
{
	const char *host = json_string_value(json_object_get(ci, "hostname"));
	char md[PATH_MAX], ud[PATH_MAX], seed[sizeof(vm->spec.seed)], meta[256];
	_cleanup_free_ char *udtext = NULL;
	int r;

	if (!ci)
		return 0;
	snprintf(md, sizeof(md), "%s/meta-data", vm->dir);
	snprintf(ud, sizeof(ud), "%s/user-data", vm->dir);
	if ((size_t)snprintf(seed, sizeof(seed), "%s/seed.img", vm->dir) >= sizeof(seed)) {
		snprintf(err, errlen, "the VM's directory is too long");
		return -ENAMETOOLONG;
	}
	snprintf(meta, sizeof(meta), "instance-id: %s\nlocal-hostname: %s\n", vm->spec.name,
		 host ? host : vm->spec.name);
	udtext = user_data_text(ci);
	if (!udtext)
		return -ENOMEM;
	r = write_file(md, meta);
	if (r == 0)
		r = write_file(ud, udtext);
	if (r < 0) {
		snprintf(err, errlen, "cannot write the cloud-init seed in %s: %s", vm->dir,
			 strerror(-r));
		return r;
	}
	(void)unlink(seed);
	{
		char *mkfs[] = { (char *)"mkfs.vfat", (char *)"--invariant", (char *)"-n",
				 (char *)"cidata", (char *)"-C", seed, (char *)"1024", NULL };
		char *cp[] = { (char *)"mcopy", (char *)"-m", (char *)"-o", (char *)"-i", seed, md,
			       ud, (char *)"::", NULL };

		r = run(mkfs);
		if (r < 0) {       /* a mkfs.vfat without --invariant: without it */
			(void)unlink(seed);
			mkfs[1] = mkfs[0];
			r = run(mkfs + 1);
		}
		if (r == 0)
			r = run(cp);
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot make the cloud-init seed (mkfs.vfat and mcopy, "
			 "packages dosfstools and mtools): %s", strerror(-r));
		(void)unlink(seed);
		return r;
	}
	memcpy(vm->spec.seed, seed, sizeof(seed));
	return 0;
}
