"""What jobs return: one row per measured configuration, and a comparison's table."""
import csv
import html
import io

from . import protocol as P

# Row fields in the order tables and CSV show them.
COLUMNS = ["backend", "device", "mode", "nogil", "threads", "copies", "n", "hits",
           "estimate", "std_error", "median_ns", "min_ns", "max_ns", "lock_handoffs",
           "lock_wait_ns", "lock_hold_ns", "h2d_ns", "kernel_ns", "d2h_ns", "launches",
           "repeat", "bytes_moved", "startup_ns", "merge_ns", "transport", "workers_started",
           "mean_ns", "stddev_ns", "q1_ns", "q3_ns", "warmup_ns", "pocl_cpu", "gpu",
           "predicted_ns", "auto", "explore", "cpu_items", "cpu_busy_ns", "dev_busy_ns",
           "cpu_chunks", "dev_chunks", "devices_used", "balance", "shared_cores", "no_gain",
           "whole", "overlap_ns"]


class Row:
    """One RESULT row (docs/protocol.md, RESULT): every field is an attribute.

    ``backend``, ``mode`` and ``transport`` are names (``"native"``, ``"split"``,
    ``"shm"``/None); ``nogil``, ``pocl_cpu`` and ``gpu`` are the row's flags as booleans;
    times are integer nanoseconds (``seconds`` is the median in seconds).
    ``predicted_ns`` is the daemon's history's prediction of one run of the row's
    configuration, made before it ran (0: it could not predict it); ``auto`` says the daemon
    chose the row's backend (``backend="auto"``), ``explore`` that it chose it to learn a
    configuration its history knows too little about (else: the fastest it predicted).
    A ``hybrid`` row says who did what: ``cpu_items`` (the pool's share of ``n``; the
    devices did the rest), ``cpu_busy_ns``, ``dev_busy_ns``, ``cpu_chunks``, ``dev_chunks``,
    ``devices_used``, ``balance`` (the balance efficiency, None when not known),
    ``shared_cores`` (OpenCL CPU devices were left out) and ``no_gain`` (a sort did not
    split: the measured rates predicted the pool alone, ``devices_used`` 0, or one device
    alone, ``cpu_items`` 0, faster) and ``whole`` (a sort split, but its array was too
    small or its keys too crowded for the pool's first pass to hand a device a range: the
    pool sorted it whole).
    A row that spanned MPI ranks (``ranks`` > 1) lists what each rank did in ``per_rank``,
    in rank order: dicts of ``rank``, ``share`` (its samples or keys), ``compute_ns``,
    ``exchange_ns``, ``io_ns`` and ``bytes_sent`` (docs/protocol.md, RESULT's rank records);
    [] otherwise.
    """

    def __init__(self, wire, job_id=0, per_rank=()):
        self.job_id = job_id
        self.per_rank = list(per_rank)
        for name, _, _, _ in P.ROW_FIELDS:
            setattr(self, name, wire[name])
        self.backend = P.BACKEND_NAMES.get(wire["backend"], str(wire["backend"]))
        self.mode = P.MODE_NAMES.get(wire["mode"], str(wire["mode"]))
        self.transport = P.TRANSPORT_NAMES.get(wire["transport"], str(wire["transport"]))
        self.nogil = bool(wire["flags"] & P.ROW_FLAG_NOGIL)
        self.pocl_cpu = bool(wire["flags"] & P.ROW_FLAG_POCL_CPU)
        self.gpu = bool(wire["flags"] & P.ROW_FLAG_GPU)
        self.auto = bool(wire["flags"] & P.ROW_FLAG_AUTO)
        self.explore = bool(wire["flags"] & P.ROW_FLAG_EXPLORE)
        self.shared_cores = bool(wire["flags"] & P.ROW_FLAG_SHARED_CORES)
        self.no_gain = bool(wire["flags"] & P.ROW_FLAG_NO_GAIN)
        self.whole = bool(wire["flags"] & P.ROW_FLAG_WHOLE)
        self.balance = wire["balance_ppm"] / 1e6 if wire["balance_ppm"] else None

    @property
    def seconds(self):
        return self.median_ns / 1e9

    def to_dict(self):
        return {c: getattr(self, c) for c in COLUMNS}

    def __repr__(self):
        return "%s(backend=%r, threads=%d, n=%d, median_ns=%d)" % (
            type(self).__name__, self.backend, self.threads, self.n, self.median_ns)


class PiResult(Row):
    """A pi job's row: ``hits``, ``estimate`` and ``error`` (its standard error) too."""

    @property
    def error(self):
        return self.std_error

    def __repr__(self):
        return "PiResult(backend=%r, threads=%d, n=%d, hits=%d, estimate=%r, median_ns=%d)" % (
            self.backend, self.threads, self.n, self.hits, self.estimate, self.median_ns)


class SortResult(Row):
    """A sort job's row; ``dtype`` names the element type (``"f64"``...)."""

    def __init__(self, wire, job_id=0, dtype=None, per_rank=()):
        super().__init__(wire, job_id, per_rank)
        self.dtype = dtype


class Comparison:
    """A compare job's rows (one per backend, thread count and transport), in the daemon's
    order.  In Jupyter it shows as a table and an SVG chart of time against threads."""

    def __init__(self, job, rows, job_id=0, n=0, dtype=None):
        self.job, self.rows, self.job_id, self.n, self.dtype = job, rows, job_id, n, dtype

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def to_dicts(self):
        return [r.to_dict() for r in self.rows]

    def to_csv(self, path=None):
        """The rows as CSV text (a header line, then one line per row); also written to
        ``path`` when given."""
        out = io.StringIO()
        w = csv.DictWriter(out, COLUMNS, lineterminator="\n")
        w.writeheader()
        for d in self.to_dicts():
            w.writerow({k: ("" if v is None else v) for k, v in d.items()})
        text = out.getvalue()
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return text

    def to_pandas(self):
        """The rows as a pandas DataFrame (ImportError when pandas is not installed)."""
        import pandas  # optional: only this method needs it
        return pandas.DataFrame(self.to_dicts(), columns=COLUMNS)

    def speedups(self):
        """Each row's speed-up over the serial row (None without one)."""
        base = [r.median_ns for r in self.rows if r.backend == "serial" and r.median_ns]
        return [(base[0] / r.median_ns if base and r.median_ns else None) for r in self.rows]

    def _repr_html_(self):
        head = ["backend", "transport", "threads", "median ms", "speed-up"]
        if self.job == "pi":
            head.insert(3, "estimate")
        lines = ["<table><tr>%s</tr>" % "".join("<th>%s</th>" % h for h in head)]
        for r, s in zip(self.rows, self.speedups()):
            cells = [r.backend, r.transport or "", r.threads, "%.3f" % (r.median_ns / 1e6),
                     "" if s is None else "%.2f×" % s]
            if self.job == "pi":
                cells.insert(3, "%.6f" % r.estimate)
            lines.append("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(str(c))
                                                 for c in cells))
        lines.append("</table>")
        return "\n".join(lines) + "\n" + self.svg()

    def svg(self, width=480, height=300):
        """An SVG chart: median time (ms, log scale) against threads, one line per backend."""
        import math
        series = {}
        for r in self.rows:
            key = r.backend + ("/" + r.transport if r.transport else "")
            if r.median_ns:
                series.setdefault(key, []).append((max(r.threads, 1), r.median_ns / 1e6))
        pts = [p for s in series.values() for p in s]
        if not pts:
            return "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d'></svg>" % (
                width, height)
        x_hi = math.log2(max(p[0] for p in pts)) or 1.0
        y_lo, y_hi = (math.log10(f(p[1] for p in pts)) for f in (min, max))
        y_span = (y_hi - y_lo) or 1.0
        m = 40

        def xy(t, ms):
            return (m + (width - 2 * m) * math.log2(t) / x_hi,
                    height - m - (height - 2 * m) * (math.log10(ms) - y_lo) / y_span)
        colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
        out = ["<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d'>" % (width,
                                                                                   height),
               "<text x='%d' y='%d' font-size='11'>threads →</text>" % (width - 90, height - 8),
               "<text x='4' y='14' font-size='11'>median ms (log)</text>"]
        for i, (name, s) in enumerate(sorted(series.items())):
            c = colours[i % len(colours)]
            path = " ".join("%.1f,%.1f" % xy(t, ms) for t, ms in sorted(s))
            out.append("<polyline fill='none' stroke='%s' points='%s'/>" % (c, path))
            out.append("<text x='%d' y='%d' font-size='11' fill='%s'>%s</text>"
                       % (width - 120, 20 + 14 * i, c, html.escape(name)))
        out.append("</svg>")
        return "\n".join(out)

    def __repr__(self):
        return "Comparison(%s, %d rows)" % (self.job, len(self.rows))
