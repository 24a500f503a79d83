// SPDX-License-Identifier: MIT
/*
 * Shared-region commands that answer at once (docs/guest.md, "Shared
 * regions"):
 *
 *   REGIONS                        OK regions=ADDR:BYTES,...
 *   RFILL REGION SEED [PAGES [PART]]    OK pages=N ms=T
 *   RVERIFY REGION SEED [PAGES [PART]]  OK pages=N mismatches=M first=P (-1: none)
 *   RPEEK REGION OFFSET                 OK value=V
 *   RRELEASE REGION, RACQUIRE REGION    OK ms=T
 *
 * RFILL writes the pattern FILL writes into RAM (guest_pattern_word), so a
 * region filled in one guest verifies in another. PART `lo` or `hi` is the
 * first or the second half (words 0-3, 4-7) of every 64-byte line, `all`
 * (the default) all of it: two guests filling the two halves of the same
 * pages of a release region verify the whole pattern once both released
 * and acquired. RRELEASE and RACQUIRE store to a release region's control
 * pages (RELEASE at size - 8192, ACQUIRE at size - 4096): the store returns
 * once the agent published this VM's diffs, or dropped its clean pages. Each command maps the
 * region, works, and unmaps it again. A store into a region this VM does
 * not hold waits in the hypervisor (its vCPU stops) until the VM gets the
 * lock: with one vCPU the whole guest, channel included, waits with it.
 */
#include "regioncmd.h"

#include "guestutil.h"
#include "rmap.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void cmd_regions(char **av, int ac)
{
	struct rmap_dev devs[RMAP_MAX];
	char list[RMAP_MAX * 40] = "";
	size_t off = 0;
	int n;

	(void)av;
	if (ac != 1)
		return guest_reply("ERR usage: REGIONS");
	n = rmap_list(devs, RMAP_MAX);
	if (n < 0)
		return guest_reply("ERR listing PCI devices: %s", strerror(-n));
	for (int i = 0; i < n && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s:%" PRIu64,
					i ? "," : "", devs[i].addr, devs[i].bytes);
	guest_reply("OK regions=%s", list);
}

/* The words of a 64-byte line that PART covers: a mask of bits 0..7. */
static int part_mask(const char *s)
{
	return !strcmp(s, "all") ? 0xff : !strcmp(s, "lo") ? 0x0f : !strcmp(s, "hi") ? 0xf0 : -1;
}

/*
 * Parse "CMD REGION SEED [PAGES [PART]]" and map the region: 0, or -1 after
 * an ERR answer. *pages: PAGES, by default every page of the region;
 * *mask: PART's words of each line (part_mask), by default all.
 */
static int fill_args(char **av, int ac, const char *usage, struct rmap *m, uint64_t *seed,
		     uint64_t *pages, int *mask)
{
	*mask = ac == 5 ? part_mask(av[4]) : 0xff;
	if (ac < 3 || ac > 5 || guest_parse_u64(av[2], 0, UINT64_MAX, seed) < 0 ||
	    (ac >= 4 && guest_parse_u64(av[3], 1, UINT64_MAX, pages) < 0) || *mask < 0) {
		guest_reply("ERR usage: %s REGION SEED [PAGES [all|lo|hi]]", usage);
		return -1;
	}
	if (rmap_open(av[1], m) < 0)
		return -1;
	if (ac == 3)
		*pages = m->bytes / PAGE;
	if (*pages > m->bytes / PAGE) {
		guest_reply("ERR pages beyond region (%" PRIu64 " > %" PRIu64 ")", *pages,
			    m->bytes / PAGE);
		return -1;
	}
	return 0;
}

static void cmd_rfill(char **av, int ac)
{
	_cleanup_(rmap_close) struct rmap m = { 0 };
	uint64_t seed, pages, t0 = guest_now_ns();
	int mask;

	if (fill_args(av, ac, "RFILL", &m, &seed, &pages, &mask) < 0)
		return;
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t *w = rmap_word(&m, p * PAGE);

		for (uint64_t i = 0; i < PAGE / 8; i++)
			if (mask & (1 << (i % 8)))
				w[i] = guest_pattern_word(seed, p, i);
	}
	guest_reply("OK pages=%" PRIu64 " ms=%llu", pages, guest_ms_since(t0));
}

static void cmd_rverify(char **av, int ac)
{
	_cleanup_(rmap_close) struct rmap m = { 0 };
	uint64_t seed, pages, bad = 0;
	int64_t first = -1;
	int mask;

	if (fill_args(av, ac, "RVERIFY", &m, &seed, &pages, &mask) < 0)
		return;
	for (uint64_t p = 0; p < pages; p++) {
		const uint64_t *w = rmap_word(&m, p * PAGE);

		for (uint64_t i = 0; i < PAGE / 8; i++)
			if ((mask & (1 << (i % 8))) && w[i] != guest_pattern_word(seed, p, i)) {
				if (first < 0)
					first = (int64_t)p;
				bad++;
				break;
			}
	}
	guest_reply("OK pages=%" PRIu64 " mismatches=%" PRIu64 " first=%" PRId64, pages, bad,
		    first);
}

static void cmd_rpeek(char **av, int ac)
{
	_cleanup_(rmap_close) struct rmap m = { 0 };
	uint64_t *w;

	if (ac != 3)
		return guest_reply("ERR usage: RPEEK REGION OFFSET");
	if (rmap_open(av[1], &m) < 0 || !(w = rmap_word_arg(&m, av[2])))
		return;
	guest_reply("OK value=%" PRIu64, __atomic_load_n(w, __ATOMIC_SEQ_CST));
}

/* One store to the control page `from_end` bytes before the region's end (mode release). */
static void sync_store(char **av, int ac, const char *usage, uint64_t from_end)
{
	_cleanup_(rmap_close) struct rmap m = { 0 };
	uint64_t t0;

	if (ac != 2)
		return guest_reply("ERR usage: %s REGION", usage);
	if (rmap_open(av[1], &m) < 0)
		return;
	if (m.bytes < 4 * PAGE)
		return guest_reply("ERR region too small for control pages");
	t0 = guest_now_ns();
	__atomic_store_n(rmap_word(&m, m.bytes - from_end), 1, __ATOMIC_SEQ_CST);
	guest_reply("OK ms=%llu", guest_ms_since(t0));
}

static void cmd_rrelease(char **av, int ac)
{
	sync_store(av, ac, "RRELEASE", 2 * PAGE);
}

static void cmd_racquire(char **av, int ac)
{
	sync_store(av, ac, "RACQUIRE", PAGE);
}

const struct guest_cmd region_cmds[] = {
	{ "REGIONS", cmd_regions },
	{ "RFILL", cmd_rfill },
	{ "RVERIFY", cmd_rverify },
	{ "RPEEK", cmd_rpeek },
	{ "RRELEASE", cmd_rrelease },
	{ "RACQUIRE", cmd_racquire },
	{ NULL, NULL },
};
