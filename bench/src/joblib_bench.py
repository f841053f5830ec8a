"""The joblib side of parjob-bench: serves one (backend, workload) to the Rust harness.

Started by `parjob-bench` as `python joblib_bench.py --serve <backend> <workload> <spin_us> <jobs>`;
it speaks the line protocol of bench/src/child.rs on stdin and stdout. The tasks and the
checksum mirror bench/src/workload.rs exactly, so that the harness can check that every
system computed the same results.
"""

import array
import gc
import resource
import sys
import time

MASK = (1 << 64) - 1
W4_LEN = 1 << 20
W6_LEN = 1 << 23
W7_TASKS_PER_CALL = 64


def neg(x):
    return -x


def mix(x):
    return ((x * 0x9E3779B97F4A7C15) & MASK) >> 32


def spin(x, micros):
    # Spin on the clock, as the Rust task does: the task occupies the cpu (and the GIL).
    end = time.perf_counter() + micros * 1e-6
    while time.perf_counter() < end:
        pass
    return mix(x)


def vsum(v):
    return sum(v)


def noop(x):
    return x


def w6_data():
    """Element j is j % 1000, as in Rust: a numpy array, which joblib memory-maps for its
    workers once per call."""
    import numpy

    return numpy.arange(W6_LEN, dtype=numpy.float64) % 1000.0


def w6_task(data, i):
    return int(data.sum() * float(i % 7 + 1))


_PATTERN = None


def w4_input(i):
    """Element j is (i + j) % 1000, as in Rust; an array.array('d') is 8 MiB of doubles."""
    global _PATTERN
    if _PATTERN is None:
        _PATTERN = array.array("d", map(float, range(1000))) * (W4_LEN // 1000 + 2)
    s = i % 1000
    return _PATTERN[s : s + W4_LEN]


def checksum(values):
    c = 0
    for i, v in enumerate(values, 1):
        c = (c + i * (int(v) & MASK)) & MASK
    return c


def release_freed_memory():
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


def keep_freed_memory():
    """As bench/src/native.rs does for W4 in the driving process: glibc keeps freed memory
    (M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1) instead of trimming inside the timed call."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)
        libc.mallopt(-1, 2**31 - 1)
    except Exception:
        pass


def run(Parallel, delayed, backend, workload, count, spin_us, jobs):
    def P(**kw):
        return Parallel(n_jobs=jobs, backend=backend, **kw)

    if workload == "W1":
        t0 = time.perf_counter_ns()
        out = P()(delayed(neg)(x) for x in range(count))
        t1 = time.perf_counter_ns()
    elif workload in ("W2", "W3"):
        t0 = time.perf_counter_ns()
        out = P()(delayed(spin)(x, spin_us) for x in range(count))
        t1 = time.perf_counter_ns()
    elif workload == "W4":
        inputs = [w4_input(i) for i in range(count)]
        t0 = time.perf_counter_ns()
        out = P()(delayed(vsum)(v) for v in inputs)
        t1 = time.perf_counter_ns()
        del inputs
    elif workload == "W5":
        out = []
        t0 = time.perf_counter_ns()
        # joblib's documented way to reuse its workers across calls.
        with P() as p:
            for call in range(count):
                out.extend(p(delayed(noop)(2 * call + i) for i in range(2)))
        t1 = time.perf_counter_ns()
    elif workload == "W6":
        data = w6_data()
        t0 = time.perf_counter_ns()
        out = P()(delayed(w6_task)(data, i) for i in range(count))
        t1 = time.perf_counter_ns()
        del data
    elif workload == "W7":
        data = w6_data()
        out = []
        t0 = time.perf_counter_ns()
        with P() as p:
            for call in range(count // W7_TASKS_PER_CALL):
                first = call * W7_TASKS_PER_CALL
                out.extend(p(delayed(w6_task)(data, i) for i in range(first, first + W7_TASKS_PER_CALL)))
        t1 = time.perf_counter_ns()
        del data
    elif workload == "RT":
        t0 = time.perf_counter_ns()
        out = P(batch_size=1, pre_dispatch=1)(delayed(noop)(x) for x in range(count))
        t1 = time.perf_counter_ns()
    else:
        raise ValueError("unknown workload %r" % workload)
    c = checksum(out)
    del out
    if workload == "W4":
        gc.collect()
        release_freed_memory()
    return t1 - t0, c


def serve(backend, workload, spin_us, jobs):
    try:
        from joblib import Parallel, delayed
    except Exception as e:
        print("unavailable cannot import joblib: %s" % e, flush=True)
        return 0
    if workload == "W4":
        keep_freed_memory()
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["run"] and len(words) == 3:
            try:
                times, sums = [], set()
                for _ in range(max(1, int(words[2]))):
                    nanos, c = run(Parallel, delayed, backend, workload, int(words[1]), spin_us, jobs)
                    times.append(nanos)
                    sums.add(c)
                if len(sums) != 1:
                    raise ValueError("results differ between repetitions")
                times.sort()
                n = len(times)
                median = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) // 2
                reply = "ok %d %d" % (median, c)
            except Exception as e:
                reply = "err %s: %s" % (type(e).__name__, str(e).replace("\n", " "))
            print(reply, flush=True)
        elif words == ["quit"]:
            reaped = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            print("bye %d" % reaped, flush=True)
            return 0
        else:
            print("err unknown request %r" % line.strip(), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        sys.exit(serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    print("usage: joblib_bench.py --serve <backend> <workload> <spin_us> <jobs>", file=sys.stderr)
    sys.exit(2)
