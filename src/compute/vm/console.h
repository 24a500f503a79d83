/* SPDX-License-Identifier: MIT */
/*
 * Why a guest or its QEMU died, from the tail of the serial console
 * (console.log) or of QEMU's own output (qemu.log). Pure text handling:
 * no VM, no state (tests/vm_layers/test_console.c).
 */
#ifndef DISAGG_VM_CONSOLE_H
#define DISAGG_VM_CONSOLE_H

#include <stddef.h>

/* The last len - 1 bytes of a file, NUL-terminated ("" if unreadable). */
void console_file_tail(const char *path, char *buf, size_t len);
/*
 * The reason in a console's tail `text` (changed in place): the kernel's
 * last panic line if there is one, else the last line that is not empty;
 * "" for an empty text. Always NUL-terminated in buf.
 */
void console_parse_reason(char *text, char *buf, size_t len);
/* console_parse_reason of the last 32 KiB of the console at path. */
void console_reason(const char *path, char *buf, size_t len);
/* The tail of a log on one line (line breaks become spaces, the last one goes). */
void console_log_tail(const char *path, char *buf, size_t len);

#endif /* DISAGG_VM_CONSOLE_H */
