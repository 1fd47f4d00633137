/*
 * pace_int.h: limits shared by the files of the pace module; not part of its contract.
 * Ceilings beyond these are configuration mistakes: the minute window keeps one 8-byte slot
 * per allowed request, so per_min bounds its memory.
 */
#ifndef KEAPSYNC_PACE_INT_H
#define KEAPSYNC_PACE_INT_H

#define PACE_MAX_PER_SEC 10000.0
#define PACE_MAX_PER_MIN 1000000LL
#define PACE_MAX_PER_DAY 1000000000000LL

#endif
