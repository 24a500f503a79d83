// SPDX-License-Identifier: MIT
/*
 * Unit test of the revocation list (src/common/revlist.c) that memory
 * nodes and device nodes keep: REVOKE payloads taken or refused, the
 * list sorted without duplicates, and its file DIR/revoked (one decimal
 * id per line) written, read back by a new list, and refused when it is
 * damaged. In a temporary directory.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "revlist.h"
#include "tap.h"
#include "disagg/proto.h"

static char dir[] = "/tmp/revlist-XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static const char *read_file(const char *name)
{
	static char buf[256];
	char path[256];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return "(none)";
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/* A REVOKE payload of `count` ids (wire order) and `rsvd`: its length. */
static size_t payload(uint8_t *buf, uint32_t count, const uint64_t *ids, uint32_t rsvd)
{
	struct proto_revoke_req req = { .count = htole32(count), .rsvd = htole32(rsvd) };

	memcpy(buf, &req, sizeof(req));
	for (uint32_t i = 0; i < count; i++) {
		uint64_t v = htole64(ids[i]);

		memcpy(buf + sizeof(req) + i * sizeof(v), &v, sizeof(v));
	}
	return sizeof(req) + count * sizeof(uint64_t);
}

static void test_wire(void)
{
	static const uint64_t ids[] = { 9, 7, 9 }, zero[] = { 5, 0 };
	struct revlist rv = { 0 };
	uint8_t buf[64];
	size_t len;

	ok(revlist_init(&rv, NULL) == 0, "a list in memory only");
	len = payload(buf, 3, ids, 0);
	ok(revlist_set_wire(&rv, buf, len) == 0 && atomic_load(&rv.count) == 2 &&
	   revlist_has(&rv, 7) && revlist_has(&rv, 9), "a REVOKE of three ids, one twice");
	ok(revlist_set_wire(&rv, buf, 4) == -EBADMSG, "a short payload: -EBADMSG");
	ok(revlist_set_wire(&rv, buf, len - 1) == -EBADMSG, "a cut id: -EBADMSG");
	ok(revlist_set_wire(&rv, buf, len + 8) == -EBADMSG, "bytes past the ids: -EBADMSG");
	len = payload(buf, 3, ids, 1);
	ok(revlist_set_wire(&rv, buf, len) == -EBADMSG, "rsvd set: -EBADMSG");
	len = payload(buf, 2, zero, 0);
	ok(revlist_set_wire(&rv, buf, len) == -EBADMSG, "node id 0: -EBADMSG");
	payload(buf, 0, NULL, 0);
	((struct proto_revoke_req *)buf)->count = htole32(PROTO_MAX_REVOKED + 1);
	ok(revlist_set_wire(&rv, buf, sizeof(struct proto_revoke_req)) == -EBADMSG,
	   "over PROTO_MAX_REVOKED: -EBADMSG");
	ok(atomic_load(&rv.count) == 2 && revlist_has(&rv, 7) && !revlist_has(&rv, 5),
	   "refused lists leave the list as it was");
	len = payload(buf, 0, NULL, 0);
	ok(revlist_set_wire(&rv, buf, len) == 0 && atomic_load(&rv.count) == 0,
	   "an empty list empties it");
	revlist_destroy(&rv);
}

static void test_list(void)
{
	static const uint64_t ids[] = { 42, 7, 42, 1000000000000ull };
	struct revlist rv = { 0 }, again = { 0 }, mem = { 0 };
	uint64_t gen;

	ok(revlist_init(&rv, dir) == 0, "a list in a directory without a file");
	ok(atomic_load(&rv.count) == 0 && !revlist_has(&rv, 7), "starts empty");
	gen = atomic_load(&rv.gen);
	ok(revlist_set(&rv, ids, 4) == 0, "set four ids, one twice");
	ok(atomic_load(&rv.count) == 3 && atomic_load(&rv.gen) == gen + 1,
	   "three ids, a new generation");
	ok(revlist_has(&rv, 7) && revlist_has(&rv, 42) && revlist_has(&rv, 1000000000000ull) &&
	   !revlist_has(&rv, 8), "lookups");
	is_str(read_file("revoked"), "7\n42\n1000000000000\n", "DIR/revoked: sorted, one a line");
	is_str(read_file(".revoked.tmp"), "(none)", "no temporary file left");
	ok(revlist_init(&again, dir) == 0 && atomic_load(&again.count) == 3 &&
	   revlist_has(&again, 42), "a new list reads the file back");
	revlist_destroy(&again);
	ok(revlist_set(&rv, NULL, 0) == 0 && atomic_load(&rv.count) == 0 && !revlist_has(&rv, 7),
	   "an empty list empties it");
	is_str(read_file("revoked"), "", "and the file");
	revlist_destroy(&rv);

	write_file("revoked", "5\nfive\n");
	ok(revlist_init(&again, dir) == -EBADMSG, "a damaged file: -EBADMSG");
	revlist_destroy(&again);
	write_file("revoked", "0\n");
	ok(revlist_init(&again, dir) == -EBADMSG, "node id 0 in the file: -EBADMSG");
	revlist_destroy(&again);

	ok(revlist_init(&mem, NULL) == 0 && revlist_set(&mem, ids, 2) == 0 &&
	   revlist_has(&mem, 7), "without a directory: in memory only");
	revlist_destroy(&mem);
}

int main(void)
{
	char path[300];

	if (!mkdtemp(dir)) {
		plan_skip_all("cannot make a temporary directory");
		return 0;
	}
	test_wire();
	test_list();
	snprintf(path, sizeof(path), "%s/revoked", dir);
	unlink(path);
	rmdir(dir);
	done_testing();
	return tap_exit();
}
