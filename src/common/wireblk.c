// SPDX-License-Identifier: MIT
/*
 * The device node's frames (wireblk.h): byte order, names and the checks
 * of every request before the node acts on it.
 */
#include "wireblk.h"

#include <endian.h>
#include <errno.h>
#include <string.h>

#include "wire.h"

#define LE32(x) ((x) = le32toh(x))
#define LE64(x) ((x) = le64toh(x))

void wire_blk_open_req_swap(struct proto_blk_open_req *m)
{
	wire_grant_swap(&m->grant);
	LE32(m->flags);
	LE32(m->rsvd);
}

void wire_blk_open_rep_swap(struct proto_blk_open_rep *m)
{
	LE32(m->handle);
	LE32(m->flags);
	LE64(m->size);
}

void wire_blk_io_swap(struct proto_blk_io *m)
{
	LE32(m->handle);
	LE32(m->len);
	LE64(m->offset);
}

void wire_blk_handle_swap(struct proto_blk_handle *m)
{
	LE32(m->handle);
	LE32(m->rsvd);
}

void wire_vol_req_swap(struct proto_vol_req *m)
{
	LE64(m->size);
	LE32(m->flags);
	LE32(m->rsvd);
}

void wire_volume_swap(struct proto_volume *m)
{
	LE64(m->size);
	LE64(m->allocated);
	LE64(m->key);
	LE32(m->users);
	LE32(m->flags);
}

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (!first && (c == '_' || c == '-'));
}

int wire_vol_name(const char field[PROTO_VOL_NAME_SIZE], char ret[PROTO_VOL_NAME_SIZE])
{
	size_t n = strnlen(field, PROTO_VOL_NAME_SIZE);

	if (n == 0 || n == PROTO_VOL_NAME_SIZE)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		if (!name_char(field[i], i == 0))
			return -EBADMSG;
	for (size_t i = n; i < PROTO_VOL_NAME_SIZE; i++)
		if (field[i])
			return -EBADMSG;
	memcpy(ret, field, PROTO_VOL_NAME_SIZE);
	return 0;
}

int wire_vol_name_put(char field[PROTO_VOL_NAME_SIZE], const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n >= PROTO_VOL_NAME_SIZE)
		return -EINVAL;
	memset(field, 0, PROTO_VOL_NAME_SIZE);
	if (n)
		memcpy(field, name, n);
	return 0;
}

int wire_blk_open_decode(const void *payload, size_t len, struct proto_blk_open_req *ret,
			 char ret_name[PROTO_VOL_NAME_SIZE])
{
	struct proto_blk_open_req m;
	int r = wire_fixed(payload, len, &m, sizeof(m));

	if (r < 0)
		return r;
	wire_blk_open_req_swap(&m);
	if (m.rsvd || (m.flags & ~(uint32_t)(PROTO_BLK_RDONLY | PROTO_BLK_TAKEOVER)))
		return -EBADMSG;
	r = wire_vol_name(m.name, ret_name);
	if (r < 0)
		return r;
	*ret = m;
	return 0;
}

int wire_blk_io_decode(uint16_t op, const void *payload, size_t len, struct proto_blk_io *ret,
		       const uint8_t **ret_data)
{
	bool write = op == PROTO_OP_BLK_WRITE;
	bool moves = write || op == PROTO_OP_BLK_READ;
	struct proto_blk_io m;

	if (!moves && op != PROTO_OP_BLK_DISCARD && op != PROTO_OP_BLK_WRITE_ZEROES)
		return -EINVAL;
	if (len < sizeof(m))
		return -EBADMSG;
	memcpy(&m, payload, sizeof(m));
	wire_blk_io_swap(&m);
	if (m.len == 0 || m.len % PROTO_BLK_SECTOR || m.offset % PROTO_BLK_SECTOR)
		return -EBADMSG;
	if (m.offset > UINT64_MAX - m.len)
		return -ERANGE;
	if (moves && m.len > PROTO_BLK_MAX_IO)
		return -E2BIG;
	if (len != sizeof(m) + (write ? m.len : 0))
		return -EBADMSG;
	*ret = m;
	*ret_data = write ? (const uint8_t *)payload + sizeof(m) : NULL;
	return 0;
}

int wire_blk_handle_decode(const void *payload, size_t len, struct proto_blk_handle *ret)
{
	struct proto_blk_handle m;
	int r = wire_fixed(payload, len, &m, sizeof(m));

	if (r < 0)
		return r;
	wire_blk_handle_swap(&m);
	if (m.rsvd)
		return -EBADMSG;
	*ret = m;
	return 0;
}

int wire_vol_req_decode(uint16_t op, const void *payload, size_t len, struct proto_vol_req *ret,
			char ret_name[PROTO_VOL_NAME_SIZE], char ret_src[PROTO_VOL_NAME_SIZE])
{
	bool sized = op == PROTO_OP_VOL_CREATE || op == PROTO_OP_VOL_RESIZE;
	struct proto_vol_req m;
	int r;

	if (op < PROTO_OP_VOL_CREATE || op > PROTO_OP_VOL_STAT)
		return -EINVAL;
	r = wire_fixed(payload, len, &m, sizeof(m));
	if (r < 0)
		return r;
	wire_vol_req_swap(&m);
	if (m.rsvd)
		return -EBADMSG;
	if (m.flags & ~(op == PROTO_OP_VOL_RESIZE ? (uint32_t)PROTO_VOL_SHRINK : 0u))
		return -EBADMSG;
	if (sized ? m.size % PROTO_BLK_SECTOR || (op == PROTO_OP_VOL_CREATE && !m.size) : m.size)
		return -EBADMSG;
	char name[PROTO_VOL_NAME_SIZE], src[PROTO_VOL_NAME_SIZE] = { 0 };

	r = wire_vol_name(m.name, name);
	if (r < 0)
		return r;
	if (op == PROTO_OP_VOL_CLONE) {
		r = wire_vol_name(m.src, src);
		if (r < 0)
			return r;
	} else {
		for (size_t i = 0; i < PROTO_VOL_NAME_SIZE; i++)
			if (m.src[i])
				return -EBADMSG;
	}
	memcpy(ret_name, name, sizeof(name));   /* nothing is written on failure */
	memcpy(ret_src, src, sizeof(src));
	*ret = m;
	return 0;
}
