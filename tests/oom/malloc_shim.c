// SPDX-License-Identifier: MIT
/*
 * An LD_PRELOAD shim that makes malloc, calloc and realloc fail (NULL,
 * errno ENOMEM) once in every ICAP_SHIM_EVERY calls [200], during a window
 * that opens ICAP_SHIM_DELAY_MS after the process starts [1000] and lasts
 * ICAP_SHIM_DURATION_MS [3000]. It exercises libicap, libuv and glibc under
 * memory pressure in a real server process, by hand (not run by ctest, see
 * README "Robustness"):
 *
 *   LD_PRELOAD=build/tests/oom/libicap_malloc_shim.so build/examples/icap-echo ...
 *
 * The real allocator is reached through glibc's __libc_* entry points, so
 * the shim needs no dlsym() (which itself allocates).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static atomic_ulong g_calls;
static atomic_ulong g_refused;
static uint64_t g_every = 200, g_from_ns, g_until_ns;
static int g_ready;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  return v && *v ? strtoull(v, NULL, 10) : dflt;
}

__attribute__((constructor)) static void shim_init(void) {
  g_every = env_u64("ICAP_SHIM_EVERY", 200);
  if (g_every == 0) g_every = 200;
  uint64_t t = now_ns();
  g_from_ns = t + env_u64("ICAP_SHIM_DELAY_MS", 1000) * 1000000u;
  g_until_ns = g_from_ns + env_u64("ICAP_SHIM_DURATION_MS", 3000) * 1000000u;
  g_ready = 1;
}

/* How many calls were refused, for a report at exit. */
__attribute__((destructor)) static void shim_report(void) {
  if (getenv("ICAP_SHIM_REPORT")) {
    /* stdio would allocate; write(2) a short fixed report instead. */
    char buf[96];
    unsigned long r = atomic_load(&g_refused), c = atomic_load(&g_calls);
    int n = 0;
    const char *p = "malloc shim: refused ";
    while (*p) buf[n++] = *p++;
    char d[24];
    int k = 0;
    do d[k++] = (char)('0' + r % 10);
    while ((r /= 10) && k < 20);
    while (k) buf[n++] = d[--k];
    p = " of ";
    while (*p) buf[n++] = *p++;
    do d[k++] = (char)('0' + c % 10);
    while ((c /= 10) && k < 20);
    while (k) buf[n++] = d[--k];
    buf[n++] = '\n';
    if (write(2, buf, (size_t)n) < 0) return;
  }
}

static int refuse(void) {
  if (!g_ready) return 0;
  unsigned long n = atomic_fetch_add_explicit(&g_calls, 1, memory_order_relaxed) + 1;
  if (n % g_every) return 0;
  uint64_t t = now_ns();
  if (t < g_from_ns || t >= g_until_ns) return 0;
  atomic_fetch_add_explicit(&g_refused, 1, memory_order_relaxed);
  errno = ENOMEM;
  return 1;
}

void *malloc(size_t n) { return refuse() ? NULL : __libc_malloc(n); }

void *calloc(size_t count, size_t size) { return refuse() ? NULL : __libc_calloc(count, size); }

void *realloc(void *p, size_t n) {
  /* realloc(p, 0) frees; a refused realloc leaves p as it was. */
  if (n != 0 && refuse()) return NULL;
  return __libc_realloc(p, n);
}
