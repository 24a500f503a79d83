// SPDX-License-Identifier: MIT
/*
 * Shared-region commands that answer at once (docs/guest.md, "Shared
 * regions"):
 *
 *   REGIONS                        OK regions=ADDR:BYTES,...
 *   RFILL REGION SEED [PAGES]      OK pages=N ms=T
 *   RVERIFY REGION SEED [PAGES]    OK pages=N mismatches=M first=P (-1: none)
 *   RPEEK REGION OFFSET            OK value=V
 *
 * RFILL writes the pattern FILL writes into RAM (guest_pattern_word), so a
 * region filled in one guest verifies in another. Each command maps the
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

/*
 * Parse "CMD REGION SEED [PAGES]" and map the region: 0, or -1 after an
 * ERR answer. *pages: PAGES, by default every page of the region.
 */
static int fill_args(char **av, int ac, const char *usage, struct rmap *m, uint64_t *seed,
		     uint64_t *pages)
{
	if ((ac != 3 && ac != 4) || guest_parse_u64(av[2], 0, UINT64_MAX, seed) < 0 ||
	    (ac == 4 && guest_parse_u64(av[3], 1, UINT64_MAX, pages) < 0)) {
		guest_reply("ERR usage: %s REGION SEED [PAGES]", usage);
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

	if (fill_args(av, ac, "RFILL", &m, &seed, &pages) < 0)
		return;
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t *w = rmap_word(&m, p * PAGE);

		for (uint64_t i = 0; i < PAGE / 8; i++)
			w[i] = guest_pattern_word(seed, p, i);
	}
	guest_reply("OK pages=%" PRIu64 " ms=%llu", pages, guest_ms_since(t0));
}

static void cmd_rverify(char **av, int ac)
{
	_cleanup_(rmap_close) struct rmap m = { 0 };
	uint64_t seed, pages, bad = 0;
	int64_t first = -1;

	if (fill_args(av, ac, "RVERIFY", &m, &seed, &pages) < 0)
		return;
	for (uint64_t p = 0; p < pages; p++) {
		const uint64_t *w = rmap_word(&m, p * PAGE);

		for (uint64_t i = 0; i < PAGE / 8; i++)
			if (w[i] != guest_pattern_word(seed, p, i)) {
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

const struct guest_cmd region_cmds[] = {
	{ "REGIONS", cmd_regions },
	{ "RFILL", cmd_rfill },
	{ "RVERIFY", cmd_rverify },
	{ "RPEEK", cmd_rpeek },
	{ NULL, NULL },
};
