#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""python_compare.py - the Python echo services under the same load.

    python3 bench/python_compare.py [--pyicap PATH] [options]

Servers, each its own process on a free 127.0.0.1 port, one event loop:

- ``native``: ``bindings/python/examples/native_echo.py`` (libicap.Server,
  a handler that calls ``no_adaptation()`` on the loop thread);
- ``compat``: ``bench/python_echo_service.py`` on ``libicap.pyicap``
  (pyicap's README service, ThreadingMixIn);
- ``pyicap``: the same file on pyicap itself, when ``--pyicap PATH`` (or
  the environment variable PYICAP_PATH) names a pyicap.py.  pyicap is not
  bundled and nothing is downloaded: without it its columns say ``-``.

Load: ``icap-bench`` (the project's validating load generator) for every
scenario and connection count, the servers in alternation (A B C A B C ...
for ``--rounds`` rounds; the median of the rounds is reported).  Then the
"blocking handler" row: respmod204 on 16 connections alone, and again
while one more connection sends requests to the ``sleep`` service, whose
handler sleeps 100 ms; the row gives the second throughput over the first.
Resident memory (VmRSS) of every server is sampled during the runs at the
largest connection count.  The output is a Markdown table; ``--json FILE``
also writes the raw numbers.
"""

import argparse
import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINDINGS = os.path.join(ROOT, 'bindings', 'python')
SCENARIOS = ('respmod204', 'echo:1024', 'echo:65536', 'preview:4096:1024')


def read_port(proc, timeout=30):
    """The port a server prints in its first line ("... listening on
    HOST:PORT ..."): the servers bind port 0, so no port is guessed."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        return None
    m = re.search(r'listening on [^ ]*:(\d+)', proc.stdout.readline())
    return int(m.group(1)) if m else None


def cpu_s(pid):
    """User + system CPU seconds the process used so far."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class ServerProc:
    def __init__(self, name, argv, env):
        self.name = name
        self.proc = subprocess.Popen(
            argv + ['--port', '0'], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.port = read_port(self.proc)
        if self.port is None:
            self.stop()
            err = self.proc.stderr.read().strip()[-400:]
            raise RuntimeError('%s did not start: %s' % (name, err))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench(opts, port, service, scenario, conns, duration):
    argv = [opts.icap_bench, '--host', '127.0.0.1', '--port', str(port),
            '--service', service, '--scenario', scenario,
            '--connections', str(conns), '--duration', str(duration),
            '--warmup', str(opts.warmup), '--json']
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True,
                         timeout=duration + opts.warmup + 120).stdout
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {'requests_per_s': 0.0, 'errors': -1, 'invalid': -1}


def measure(opts, srv, scenario, conns, rss):
    """One icap-bench run against `srv`; samples the server's RSS."""
    stop = threading.Event()
    peak = [0]

    def sample():
        while not stop.wait(0.2):
            peak[0] = max(peak[0], rss_kib(srv.proc.pid))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    c0 = cpu_s(srv.proc.pid)
    try:
        r = bench(opts, srv.port, 'echo', scenario, conns, opts.duration)
    finally:
        stop.set()
        th.join()
    # Server CPU per request (warm-up included in the CPU, so also in the
    # count: the rate times warm-up plus duration approximates it).
    n = r['requests_per_s'] * (opts.duration + opts.warmup)
    r['cpu_us'] = (cpu_s(srv.proc.pid) - c0) * 1e6 / n if n else 0.0
    if conns == max(opts.conns):
        rss[srv.name] = max(rss.get(srv.name, 0), peak[0])
    return r


def blocking_row(opts, srv):
    """respmod204 on 16 connections, alone and next to a sleeping handler,
    alternating for --rounds rounds (medians)."""
    alone, beside, errors, slept, sleep_errors = [], [], 0, 0, 0
    for _ in range(opts.rounds):
        r = bench(opts, srv.port, 'echo', 'respmod204', 16, opts.duration)
        alone.append(r['requests_per_s'])
        errors += r['errors'] + r['invalid']
        box = {}
        sleeper = threading.Thread(target=lambda: box.update(r=bench(
            opts, srv.port, 'sleep', 'respmod204', 1,
            opts.duration + opts.warmup + 1)), daemon=True)
        sleeper.start()
        time.sleep(0.5)
        r = bench(opts, srv.port, 'echo', 'respmod204', 16, opts.duration)
        beside.append(r['requests_per_s'])
        errors += r['errors'] + r['invalid']
        sleeper.join(opts.duration + opts.warmup + 130)
        slept += box.get('r', {}).get('completed', 0)
        sleep_errors += max(0, box.get('r', {}).get('errors', 0))
    return {'alone': statistics.median(alone),
            'beside': statistics.median(beside), 'errors': errors,
            'sleeper_completed': slept, 'sleeper_errors': sleep_errors}


def ratio(a, b):
    return '%.2f' % (a / b) if a and b else '-'


def num(x):
    return '{:,.0f}'.format(x) if x else '-'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--pyicap', default=os.environ.get('PYICAP_PATH'),
                    help='pyicap.py, or the directory holding it')
    ap.add_argument('--icap-bench',
                    default=os.path.join(ROOT, 'build', 'bench', 'icap-bench'))
    ap.add_argument('--duration', type=float, default=3.0)
    ap.add_argument('--warmup', type=float, default=0.5)
    ap.add_argument('--rounds', type=int, default=1)
    ap.add_argument('--conns', default='1,16,256',
                    help='comma-separated connection counts')
    ap.add_argument('--scenarios', default=','.join(SCENARIOS))
    ap.add_argument('--json', help='also write the raw numbers here')
    opts = ap.parse_args()
    opts.conns = [int(c) for c in opts.conns.split(',')]
    opts.scenarios = opts.scenarios.split(',')
    if not os.access(opts.icap_bench, os.X_OK):
        sys.exit('icap-bench not found at %s (build it: cmake --build build '
                 '--target icap-bench, or pass --icap-bench)'
                 % opts.icap_bench)

    env = dict(os.environ)
    env['PYTHONPATH'] = BINDINGS + os.pathsep + env.get('PYTHONPATH', '')
    py = sys.executable
    service = os.path.join(ROOT, 'bench', 'python_echo_service.py')
    specs = [('native', [py, os.path.join(BINDINGS, 'examples',
                                          'native_echo.py')]),
             ('compat', [py, service])]
    if opts.pyicap:
        specs.append(('pyicap', [py, service, '--pyicap', opts.pyicap]))
    else:
        print('pyicap: skipped (no --pyicap PATH / PYICAP_PATH)',
              file=sys.stderr)
    servers = []
    try:
        for name, argv in specs:
            servers.append(ServerProc(name, argv, env))
        names = [s.name for s in servers]
        raw = {}
        rss = {}
        for scenario in opts.scenarios:
            for conns in opts.conns:
                runs = {n: [] for n in names}
                cpus = {n: [] for n in names}
                errs = {n: 0 for n in names}
                for _ in range(opts.rounds):
                    for srv in servers:
                        r = measure(opts, srv, scenario, conns, rss)
                        runs[srv.name].append(r['requests_per_s'])
                        cpus[srv.name].append(r['cpu_us'])
                        errs[srv.name] += r['errors'] + r['invalid']
                raw[(scenario, conns)] = (
                    {n: statistics.median(v) for n, v in runs.items()}, errs,
                    {n: statistics.median(v) for n, v in cpus.items()})
                print('# %s x%d: %s' % (scenario, conns, raw[(scenario,
                                                              conns)]),
                      file=sys.stderr, flush=True)
        blocking = {s.name: blocking_row(opts, s) for s in servers
                    if s.name != 'native'}
    finally:
        for s in servers:
            s.stop()

    has_py = 'pyicap' in names
    print('| scenario | conns | native req/s | libicap.pyicap req/s | '
          'pyicap req/s | compat / pyicap | native / pyicap | '
          'compat / native | errors n / c / p |')
    print('|---|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (scenario, conns), (med, errs, _) in raw.items():
        p = med.get('pyicap', 0)
        print('| %s | %d | %s | %s | %s | %s | %s | %s | %s |' % (
            scenario, conns, num(med['native']), num(med['compat']),
            num(p), ratio(med['compat'], p), ratio(med['native'], p),
            ratio(med['compat'], med['native']),
            ' / '.join(str(errs[n]) if n in errs else '-'
                       for n in ('native', 'compat', 'pyicap'))))
    print()
    print('Server CPU per request (user + system, microseconds):')
    print()
    print('| scenario | conns | native | libicap.pyicap | pyicap | '
          'pyicap / compat |')
    print('|---|---:|---:|---:|---:|---:|')
    for (scenario, conns), (_, _, cpu) in raw.items():
        p = cpu.get('pyicap', 0)
        print('| %s | %d | %.0f | %.0f | %s | %s |' % (
            scenario, conns, cpu['native'], cpu['compat'],
            '%.0f' % p if p else '-', ratio(p, cpu['compat'])))
    print()
    print('| blocking handler (respmod204, 16 conns) | alone req/s | '
          'beside a 100 ms sleeper req/s | ratio | sleeper requests | '
          'errors |')
    print('|---|---:|---:|---:|---:|---:|')
    for name, b in blocking.items():
        print('| %s | %s | %s | %s | %d | %d |' % (
            'libicap.pyicap' if name == 'compat' else name, num(b['alone']),
            num(b['beside']), ratio(b['beside'], b['alone']),
            b['sleeper_completed'], b['errors'] + max(0, b['sleeper_errors'])))
    print()
    print('VmRSS peak at %d connections: %s' % (max(opts.conns), ', '.join(
        '%s %.1f MiB' % (n, rss.get(n, 0) / 1024.0) for n in names)))
    if not has_py:
        print('\npyicap: not measured (no --pyicap PATH)')
    if opts.json:
        with open(opts.json, 'w') as f:
            json.dump({'runs': [{'scenario': s, 'conns': c, 'req_s': m,
                                 'errors': e, 'cpu_us': u}
                                for (s, c), (m, e, u) in raw.items()],
                       'blocking': blocking, 'rss_kib': rss,
                       'duration': opts.duration, 'rounds': opts.rounds},
                      f, indent=1)


if __name__ == '__main__':
    main()
