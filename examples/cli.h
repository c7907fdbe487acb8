/* SPDX-License-Identifier: MIT */
/*
 * Number options of the example programs (icap-echo and the C++ examples):
 * `--port 13x0` or `--workers -1` must be refused with a message, not read
 * as 13 or as a huge count, as atoi() and strtoul() would.
 */
#ifndef ICAP_EXAMPLE_CLI_H
#define ICAP_EXAMPLE_CLI_H

#include <errno.h>
#include <stdlib.h>

/* Parses `s` as a whole decimal number from 0 to `max`: digits only, no
 * sign, spaces or suffix. Returns 0 and stores the number in `*out`, or -1
 * (leaving `*out` alone) when `s` is anything else. */
static inline int example_parse_number(const char *s, unsigned long long max,
                                       unsigned long long *out) {
  if (s == NULL || *s < '0' || *s > '9') return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0' || errno != 0 || v > max) return -1;
  *out = v;
  return 0;
}

#endif /* ICAP_EXAMPLE_CLI_H */
