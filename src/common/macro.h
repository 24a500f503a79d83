/* SPDX-License-Identifier: MIT */
/*
 * Small helpers used everywhere: cleanup attributes for locals, ownership
 * hand-over (TAKE_PTR/TAKE_FD), array sizes and alignment.
 *
 * Usage:
 *     _cleanup_close_ int fd = open(...);
 *     _cleanup_free_ char *s = strdup(...);
 *     return TAKE_FD(fd);     // caller now owns fd
 */
#ifndef DISAGG_MACRO_H
#define DISAGG_MACRO_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define IS_POW2(x) ((x) != 0 && ((x) & ((x) - 1)) == 0)
#define _unused_ __attribute__((unused))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_ __attribute__((warn_unused_result))

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - __builtin_offsetof(type, member)))

/* Take ownership of a pointer or fd out of a cleanup-managed local. */
#define TAKE_PTR(p)                         \
	({                                  \
		__typeof__(p) _p_ = (p);    \
		(p) = NULL;                 \
		_p_;                        \
	})
#define TAKE_FD(fd)                         \
	({                                  \
		int _fd_ = (fd);            \
		(fd) = -1;                  \
		_fd_;                       \
	})

/* Convert a libc -1/errno result into -errno. */
#define NEG_ERRNO(r) ((r) < 0 ? -errno : (r))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Define a cleanup function `name##p` for a type with destructor `func`. */
#define DEFINE_CLEANUP_FUNC(type, func)          \
	static inline void func##p(type **p)      \
	{                                         \
		if (*p)                           \
			func(*p);                 \
	}

#endif /* DISAGG_MACRO_H */
