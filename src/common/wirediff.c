// SPDX-License-Identifier: MIT
/*
 * WRITE_DIFF frames (wirediff.h): encoding a page's byte runs against its
 * twin on the compute side, validating and applying them on the memory
 * node. A request is validated completely before anything is applied, so a
 * malformed one never changes a byte.
 */
#include "wirediff.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "wire.h"

static struct proto_diff_page page_at(const uint8_t *p)
{
	struct proto_diff_page h;

	memcpy(&h, p, sizeof(h));
	h.page = le32toh(h.page);
	h.nruns = le16toh(h.nruns);
	h.rsvd = le16toh(h.rsvd);
	return h;
}

static struct proto_diff_run run_at(const uint8_t *p)
{
	struct proto_diff_run r;

	memcpy(&r, p, sizeof(r));
	r.offset = le16toh(r.offset);
	r.len = le16toh(r.len);
	return r;
}

int wire_diff_body_check(const void *body, size_t len, uint32_t npages, uint32_t section_pages,
			 uint64_t *ret_bytes)
{
	const uint8_t *p = body, *end = p + len;
	uint64_t bytes = 0;

	for (uint32_t i = 0; i < npages; i++) {
		struct proto_diff_page h;
		uint32_t next = 0;    /* the first offset the next run may start at */
		uint64_t pb = 0;      /* the bytes of this page's runs: at most a page */

		if ((size_t)(end - p) < sizeof(h))
			return -EBADMSG;
		h = page_at(p);
		p += sizeof(h);
		if (h.rsvd != 0 || h.nruns == 0)
			return -EBADMSG;
		if (h.nruns > PROTO_MAX_DIFF_RUNS)
			return -E2BIG;
		if (h.page >= section_pages)
			return -ERANGE;
		if ((size_t)(end - p) < (size_t)h.nruns * sizeof(struct proto_diff_run))
			return -EBADMSG;
		for (uint32_t k = 0; k < h.nruns; k++, p += sizeof(struct proto_diff_run)) {
			struct proto_diff_run r = run_at(p);

			if (r.len == 0 || r.offset < next ||
			    (uint32_t)r.offset + r.len > PROTO_PAGE_SIZE)
				return -EBADMSG;
			next = (uint32_t)r.offset + r.len;
			pb += r.len;
		}
		if ((uint64_t)(end - p) < pb)
			return -EBADMSG;
		p += pb;
		bytes += pb;
	}
	if (p != end)
		return -EBADMSG;
	if (ret_bytes)
		*ret_bytes = bytes;
	return 0;
}

int wire_diff_decode(const void *payload, size_t len, uint32_t section_pages, uint32_t max_pages,
		     struct wire_diff *ret)
{
	const uint8_t *p = payload;
	struct proto_diff_req req;
	struct proto_diff_once once = { 0 };
	size_t head = sizeof(req);
	uint64_t bytes = 0;
	int r;

	if (len < sizeof(req))
		return -EBADMSG;
	memcpy(&req, p, sizeof(req));
	wire_grant_swap(&req.grant);
	req.npages = le32toh(req.npages);
	req.flags = le32toh(req.flags);
	if ((req.flags & ~(uint32_t)PROTO_DIFF_ONCE) || req.npages == 0)
		return -EBADMSG;
	if (req.npages > max_pages || req.npages > PROTO_MAX_PAGES)
		return -E2BIG;
	if (req.flags & PROTO_DIFF_ONCE) {
		if (len < head + sizeof(once))
			return -EBADMSG;
		memcpy(&once, p + head, sizeof(once));
		once.stream = le64toh(once.stream);
		once.batch = le64toh(once.batch);
		once.frame = le32toh(once.frame);
		once.rsvd = le32toh(once.rsvd);
		if (!once.stream || !once.batch || once.frame >= PROTO_DIFF_ONCE_FRAMES || once.rsvd)
			return -EBADMSG;
		head += sizeof(once);
	}
	r = wire_diff_body_check(p + head, len - head, req.npages, section_pages, &bytes);
	if (r < 0)
		return r;
	*ret = (struct wire_diff){
		.grant = req.grant,
		.npages = req.npages,
		.once = once,
		.bytes = bytes,
		.body = p + head,
		.len = len - head,
	};
	return 0;
}

size_t wire_diff_page_apply(const uint8_t *p, uint8_t *dst, uint32_t *ret_page)
{
	struct proto_diff_page h = page_at(p);
	const uint8_t *runs = p + sizeof(h), *src;

	src = runs + (size_t)h.nruns * sizeof(struct proto_diff_run);
	for (uint32_t k = 0; k < h.nruns; k++) {
		struct proto_diff_run r = run_at(runs + (size_t)k * sizeof(r));

		if (dst)
			memcpy(dst + r.offset, src, r.len);
		src += r.len;
	}
	if (ret_page)
		*ret_page = h.page;
	return (size_t)(src - p);
}

void wire_diff_apply(const struct wire_diff *d, uint8_t *base)
{
	const uint8_t *p = d->body;

	for (uint32_t i = 0; i < d->npages; i++) {
		uint32_t page = page_at(p).page;

		p += wire_diff_page_apply(p, base + (size_t)page * PROTO_PAGE_SIZE, NULL);
	}
}

size_t wire_diff_page_encode(uint32_t page, const uint8_t *twin, const uint8_t *now, uint8_t *out,
			     uint64_t *ret_changed)
{
	uint8_t *runs = out + sizeof(struct proto_diff_page), *dst;
	struct proto_diff_page h = { 0 };
	uint32_t i = 0, n = 0;
	uint64_t changed = 0;

	while (i < PROTO_PAGE_SIZE) {
		struct proto_diff_run r;
		uint32_t start;

		if (!twin) {
			start = 0;
			i = PROTO_PAGE_SIZE;
		} else {
			uint64_t a, b;

			if (i % 8 == 0) {
				memcpy(&a, twin + i, 8);
				memcpy(&b, now + i, 8);
				if (a == b) {
					i += 8;
					continue;
				}
			}
			if (twin[i] == now[i]) {
				i++;
				continue;
			}
			start = i;
			while (i < PROTO_PAGE_SIZE && twin[i] != now[i])
				i++;
		}
		/* At most PROTO_MAX_DIFF_RUNS: two runs are at least one equal byte apart. */
		r.offset = htole16((uint16_t)start);
		r.len = htole16((uint16_t)(i - start));
		memcpy(runs + (size_t)n * sizeof(r), &r, sizeof(r));
		changed += i - start;
		n++;
	}
	if (!n)
		return 0;
	h.page = htole32(page);
	h.nruns = htole16((uint16_t)n);
	memcpy(out, &h, sizeof(h));
	dst = runs + (size_t)n * sizeof(struct proto_diff_run);
	for (uint32_t k = 0; k < n; k++) {
		struct proto_diff_run r = run_at(runs + (size_t)k * sizeof(r));

		memcpy(dst, now + r.offset, r.len);
		dst += r.len;
	}
	if (ret_changed)
		*ret_changed = changed;
	return (size_t)(dst - out);
}

size_t wire_diff_req_encode(const struct proto_grant *g, uint32_t npages,
			    const struct proto_diff_once *once, void *out)
{
	struct proto_diff_req req = {
		.grant = *g,
		.npages = htole32(npages),
		.flags = htole32(once ? PROTO_DIFF_ONCE : 0),
	};
	struct proto_diff_once o;

	wire_grant_swap(&req.grant);
	memcpy(out, &req, sizeof(req));
	if (!once)
		return sizeof(req);
	o = (struct proto_diff_once){
		.stream = htole64(once->stream),
		.batch = htole64(once->batch),
		.frame = htole32(once->frame),
	};
	memcpy((uint8_t *)out + sizeof(req), &o, sizeof(o));
	return sizeof(req) + sizeof(o);
}
