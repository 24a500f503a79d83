/* SPDX-License-Identifier: MIT */
/*
 * Disk commands of disagg-guest (diskcmd.c; docs/guest.md, "Disks"):
 *
 *   DISKS                              OK disks=vda:BYTES:SERIAL,...
 *   DWRITE DEV OFFSET BYTES SEED       OK bytes=N ms=T
 *   DVERIFY DEV OFFSET BYTES SEED      OK bytes=N mismatches=M first=OFF (-1: none) ms=T
 *   DFLUSH DEV                         OK ms=T
 *   DZERO DEV OFFSET BYTES             OK ms=T  (BLKZEROOUT: write-zeroes)
 *   DDISCARD DEV OFFSET BYTES          OK ms=T  (BLKDISCARD)
 *   DBENCH DEV MODE BS QD SECONDS SPAN OK ops=N iops=X MBps=Y ms=T
 *       MODE randread, randwrite, read or write; QD threads of O_DIRECT I/O
 *
 * DEV is a name under /dev (vda). I/O is O_DIRECT in chunks of 256 KiB, so
 * every byte goes to the disk and comes back from it, never from the
 * guest's page cache. The data is guest_pattern_word(SEED, offset / 4096,
 * word): DVERIFY of another SEED, or of zeros, mismatches. OFFSET and
 * BYTES are multiples of 4096.
 */
#ifndef DISAGG_GUEST_DISKCMD_H
#define DISAGG_GUEST_DISKCMD_H

#include "guestutil.h"

extern const struct guest_cmd disk_cmds[];

#endif
