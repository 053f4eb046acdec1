"""Hand-made SVG charts and the page that holds them (pure: report.Data in, HTML out).

No charting library: the page must open anywhere with no network and pyfork keeps its
runtime dependencies to three. Legibility rules, so 20 workers and 24 hours still read:
every series is cut to one point per horizontal pixel (the bucket's peak, so no spike is
hidden), the legend is HTML below the chart (it wraps instead of overlapping the plot),
axis ticks come from a fixed ladder of round steps, and restarts are marks on the axis,
one colour per reason, counted in the legend.
"""
import datetime
import html
import re

W, H = 960, 300                 # the plot area
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 16, 46
MB = 1048576
TIME_STEPS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)
REASON_COLOURS = {"crash": "#d62728", "timeout": "#ff7f0e", "memory": "#9467bd", "oom_kill": "#000000",
                  "zombies": "#8c564b", "threads": "#e377c2", "tasks": "#7f7f7f", "max_requests": "#17becf",
                  "reload": "#2ca02c", "R14": "#bcbd22", "R15": "#000000", "exit": "#d62728"}


def colour(i, n):
    """n well-spread hues (the golden angle), alternating lightness so neighbours differ."""
    return "hsl(%d,%d%%,%d%%)" % ((i * 137.508) % 360, 62, 42 if i % 2 else 55)


def nice_step(span, ticks=6):
    """A round step (1, 2, 2.5 or 5 times a power of ten) giving about `ticks` ticks."""
    if span <= 0:
        return 1
    raw = span / ticks
    power = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1
    while raw < power:
        power /= 10
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * power:
            return m * power
    return 10 * power


def time_step(span):
    for step in TIME_STEPS:
        if span / step <= 10:
            return step
    return TIME_STEPS[-1]


def time_label(t, relative, step):
    if relative:
        h, m = divmod(int(t) // 60, 60)
        return "+%dh%02dm" % (h, m) if step >= 60 else "+%ds" % t
    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%H:%M" if step >= 60 else "%H:%M:%S") if step < 86400 else d.strftime("%m-%d")


def bucketed(points, t0, t1, n=W):
    """[(t, v)] -> {pixel: peak v}, one bucket per horizontal pixel."""
    out = {}
    span = (t1 - t0) or 1
    for t, v in points:
        x = min(n - 1, int((t - t0) / span * n))
        if v is not None and (x not in out or v > out[x]):
            out[x] = v
    return out


class Frame:
    """One chart's axes: maps (t, value) to SVG coordinates and draws grid and labels."""

    def __init__(self, t0, t1, vmax, relative, unit="", scale=1):
        self.t0, self.t1 = t0, max(t1, t0 + 1)
        self.step = nice_step(vmax / scale) * scale if vmax > 0 else scale
        self.vmax = max(self.step, -(-vmax // self.step) * self.step)
        self.relative, self.unit, self.scale = relative, unit, scale
        self.parts = []

    def x(self, t):
        return LEFT + (t - self.t0) / (self.t1 - self.t0) * W

    def xpix(self, px):
        return LEFT + px + 0.5

    def y(self, v):
        return TOP + H - (v / self.vmax) * H

    def grid(self, y_title):
        p = self.parts
        v = 0
        while v <= self.vmax + 1e-9:
            y = self.y(v)
            p.append('<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>' % (LEFT, LEFT + W, y, y))
            label = ("%g" % round(v / self.scale, 2)) + self.unit
            p.append('<text class="tick" x="%d" y="%.1f" text-anchor="end">%s</text>' % (LEFT - 6, y + 4, label))
            v += self.step
        step = time_step(self.t1 - self.t0)
        t = -(-self.t0 // step) * step
        while t <= self.t1:
            x = self.x(t)
            p.append('<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>' % (x, x, TOP, TOP + H))
            if x <= LEFT + W - 24:      # a label at the very edge would be cut in half
                p.append('<text class="tick" x="%.1f" y="%d" text-anchor="middle">%s</text>'
                         % (x, TOP + H + 16, time_label(t, self.relative, step)))
            t += step
        p.append('<text class="axis" x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s</text>'
                 % (TOP + H // 2, TOP + H // 2, html.escape(y_title)))
        p.append('<text class="axis" x="%d" y="%d" text-anchor="middle">%s</text>' % (
            LEFT + W // 2, TOP + H + 38, "time since the master started" if self.relative else "time (UTC)"))

    def line(self, points, name, stroke, dash="", width=2):
        b = bucketed(points, self.t0, self.t1)
        if not b:
            return
        d = "M" + " L".join("%.1f,%.1f" % (self.xpix(px), self.y(v)) for px, v in sorted(b.items()))
        self.parts.append('<path class="series" data-series="%s" d="%s" fill="none" stroke="%s" '
                          'stroke-width="%s"%s><title>%s</title></path>' % (
                              html.escape(name), d, stroke, width,
                              ' stroke-dasharray="%s"' % dash if dash else "", html.escape(name)))

    def mark(self, v, label, stroke):
        y = self.y(v)
        self.parts.append('<line class="mark" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" '
                          'stroke-dasharray="6 4"/>' % (LEFT, LEFT + W, y, y, stroke))
        self.parts.append('<text class="marklabel" x="%d" y="%.1f" text-anchor="end" fill="%s">%s</text>'
                          % (LEFT + W - 4, y - 4, stroke, html.escape(label)))

    def svg(self, label):
        return ('<svg role="img" aria-label="%s" viewBox="0 0 %d %d" width="%d" height="%d" '
                'xmlns="http://www.w3.org/2000/svg">%s</svg>' % (
                    html.escape(label), LEFT + W + RIGHT, TOP + H + BOTTOM, LEFT + W + RIGHT,
                    TOP + H + BOTTOM, "".join(self.parts)))


def stack_peak(series, t0, t1):
    """The highest pixel of the stack `stack` draws."""
    total = {}
    for _, pts in series:
        for px, v in bucketed(pts, t0, t1).items():
            total[px] = total.get(px, 0) + v
    return max(total.values()) if total else 0


def stack(frame, series):
    """Stacked areas, first series at the bottom: each pixel stacks the series' peaks there."""
    buckets = [(name, bucketed(pts, frame.t0, frame.t1)) for name, pts in series]
    pixels = sorted(set().union(*(b.keys() for _, b in buckets))) if buckets else []
    base = dict.fromkeys(pixels, 0)
    for i, (name, b) in enumerate(buckets):
        top = {px: base[px] + b.get(px, 0) for px in pixels}
        upper = " L".join("%.1f,%.1f" % (frame.xpix(px), frame.y(top[px])) for px in pixels)
        lower = " L".join("%.1f,%.1f" % (frame.xpix(px), frame.y(base[px])) for px in reversed(pixels))
        frame.parts.append('<path class="series area" data-series="%s" d="M%s L%s Z" fill="%s" '
                           'fill-opacity="0.75" stroke="none"><title>%s</title></path>' % (
                               html.escape(name), upper, lower, colour(i, len(buckets)), html.escape(name)))
        base = top


def restart_marks(frame, restarts):
    for t, who, reason in restarts:
        x = frame.x(t)
        frame.parts.append('<path class="restart" data-reason="%s" d="M%.1f,%d l-5,9 h10 Z" fill="%s">'
                           '<title>%s: %s</title></path>' % (html.escape(reason), x, TOP + H - 9,
                                                            REASON_COLOURS.get(reason, "#444"),
                                                            html.escape(who), html.escape(reason)))


def legend(items):
    """[(name, colour, css class)] -> the HTML legend (wraps; never drawn over the plot)."""
    return '<ul class="legend">%s</ul>' % "".join(
        '<li class="%s"><span class="swatch" style="background:%s"></span>%s</li>' % (
            cls, c, html.escape(name)) for name, c, cls in items)


STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1080px}
h1{font-size:20px}h2{font-size:16px;margin:28px 0 4px}svg{display:block;max-width:100%;height:auto}
.grid{stroke:#e4e4e4;stroke-width:1}.tick{font-size:11px;fill:#555}.axis{font-size:12px;fill:#333}
.marklabel{font-size:11px}.legend{list-style:none;padding:0;margin:4px 0 0 70px;columns:5 150px;font-size:12px}
.legend li{break-inside:avoid;white-space:nowrap}.swatch{display:inline-block;width:12px;height:12px;
margin-right:5px;vertical-align:-2px;border-radius:2px}.summary td{padding:1px 14px 1px 0}
.note{color:#666;font-size:12px}"""


def _order(name):
    kind, _, nr = name.partition(" ")
    return (kind != "master", int(nr) if nr.isdigit() else 0, name)


def _span(data):
    times = [t for pts in data.memory.values() for t, _ in pts]
    times += [t for t, _ in data.tasks + data.workers] + [t for t, _, _ in data.restarts]
    return (min(times), max(times)) if times else (0, 1)


def memory_chart(data, t0, t1):
    names = sorted(data.memory, key=_order)
    quota = data.quota[-1][1] if data.quota else None
    series = [(n, data.memory[n]) for n in names]
    top = stack_peak(series, t0, t1)
    used = max([top] + [v for _, v in data.dyno_total])
    # a quota far above the use (the machine's memory, with no cgroup limit) would flatten it
    far = quota is not None and quota > 4 * used
    vmax = used if far else max(used, quota or 0)
    unit, scale = ("GB", 1024 * MB) if vmax >= 2048 * MB else ("MB", MB)
    f = Frame(t0, t1, vmax * 1.05, data.relative, unit, scale)
    f.grid("memory (%s), stacked" % data.measure)
    stack(f, series)
    items = [(n, colour(i, len(names)), "") for i, n in enumerate(names)]
    if data.dyno_total and any(n.startswith(("worker", "master")) for n in names):
        f.line(data.dyno_total, "dyno total (cgroup)", "#111", dash="2 3", width=1.5)
        items.append(("dyno total (cgroup)", "#111", "line"))
    if far:
        f.parts.append('<text class="marklabel" x="%d" y="%d" text-anchor="end" fill="#c00">quota %.0fMB '
                       '(far above: not to scale)</text>' % (LEFT + W - 4, TOP + 12, quota / MB))
        items.append(("quota %.0fMB, above the chart" % (quota / MB), "#c00", "line"))
    elif quota:
        f.line(data.quota, "quota", "#c00", width=2.5)
        f.mark(quota * 0.95, "95%% of quota (%.0fMB)" % (quota * 0.95 / MB), "#c00")
        f.mark(quota * 0.80, "80%% of quota (%.0fMB)" % (quota * 0.80 / MB), "#d98200")
        items.append(("quota %.0fMB" % (quota / MB), "#c00", "line"))
    restart_marks(f, data.restarts)
    counts = {}
    for _, _, reason in data.restarts:
        counts[reason] = counts.get(reason, 0) + 1
    items += [("restart: %s (%d)" % (r, n), REASON_COLOURS.get(r, "#444"), "restart") for r, n in sorted(counts.items())]
    return f.svg("memory per process against the quota") + legend(items), top, quota, counts


def tasks_chart(data, t0, t1):
    zombies = sorted(data.zombies.items())
    used = max([v for _, v in data.tasks + zombies] or [1])
    limit = max([v for _, v in data.tasks_max] or [0])
    # a limit far above the use (16384 on a performance dyno) would flatten the use to a line
    far = limit > 4 * used
    f = Frame(t0, t1, (used * 1.5 if far else max(used, limit) * 1.05), data.relative)
    f.grid("tasks (processes + threads)")
    items = [("tasks", "#1f77b4", "line"), ("zombies (all workers)", "#8c564b", "line")]
    if far:
        f.parts.append('<text class="marklabel" x="%d" y="%d" text-anchor="end" fill="#c00">task limit %d '
                       '(far above: not to scale)</text>' % (LEFT + W - 4, TOP + 12, limit))
        items.append(("task limit %d, above the chart" % limit, "#c00", "line"))
    elif limit:
        f.line(data.tasks_max, "task limit", "#c00", width=2.5)
        items.append(("task limit %d" % limit, "#c00", "line"))
    f.line(data.tasks, "tasks", "#1f77b4")
    f.line(zombies, "zombies (all workers)", "#8c564b", dash="5 3")
    restart_marks(f, data.restarts)
    return f.svg("tasks and zombies against the task limit") + legend(items)


def advised_label(bounds):
    """The advised line's name with the limits that bound it, as the advice names them:
    'workers advised (limited by cpu)', '(limited by cpu, then memory)'; no guess without one."""
    return "workers advised" + (" (limited by %s)" % ", then ".join(bounds) if bounds else "")


# where the quota came from (metrics.tasks_line's quota_from), in the header's words
QUOTA_FROM = {"cgroup": "the cgroup's own limit", "cgroup-parent": "a parent cgroup's limit",
              "dyno-size": "--dyno-size", "flag": "--memory-quota", "machine": "the machine's memory (no limit found)"}


def quota_words(data):
    """'from --dyno-size standard-1x', 'from the cgroup's own limit', ..."""
    if data.quota_from is None:
        return "from memory_quota in the log"
    words = QUOTA_FROM.get(data.quota_from, data.quota_from)
    if data.quota_from == "dyno-size" and data.dyno_size:
        words += " " + data.dyno_size
    return "from " + words


def bounds_of(data, advice):
    """The binding limits: the log's advice lines, else the live sentence's."""
    if data.bounds or not advice:
        return data.bounds
    found = re.search(r"; limited by (\w+)", advice)
    return [found.group(1)] if found else []


def workers_chart(data, t0, t1, bounds):
    vmax = max([v for _, v in data.workers + data.advised] or [1])
    f = Frame(t0, t1, vmax * 1.1 + 1, data.relative)
    f.grid("workers")
    f.line(data.workers, "workers running", "#1f77b4")
    f.line(data.advised, "workers advised", "#2ca02c", dash="6 3")
    return f.svg("workers running and advised") + legend(
        [("workers running", "#1f77b4", "line"), (advised_label(bounds), "#2ca02c", "line")])


def page(data, title, refresh=None, advice=None):
    """The whole page. refresh: seconds for the live page's reload; advice: the latest sentence."""
    t0, t1 = _span(data)
    mem, top, quota, counts = memory_chart(data, t0, t1)
    span = t1 - t0
    rows = [("span", "%s, %d metrics lines" % ("%.1f hours" % (span / 3600) if span >= 7200 else
                                              "%.0f minutes" % (span / 60) if span >= 120 else "%.0f seconds" % span,
                                              data.lines))]
    if quota:
        rows.append(("quota", "%.0fMB %s" % (quota / MB, quota_words(data))))
        rows.append(("peak memory (stacked %s)" % data.measure, "%.0fMB of %.0fMB quota (%.0f%%)"
                     % (top / MB, quota / MB, 100 * top / quota)))
    if data.cgroup_total:
        rows.append(("cgroup total", "peak %.0fMB, not drawn: the quota is not this cgroup's own limit, so its "
                     "total (other processes may share the cgroup) is not the dyno's" % (
                         max(v for _, v in data.cgroup_total) / MB)))
    rows.append(("restarts", ", ".join("%s %d" % kv for kv in sorted(counts.items())) or "none"))
    bounds = bounds_of(data, advice)
    if data.advised:
        rows.append(("advice", "%d workers advised (last sample%s); %d running" % (
            data.advised[-1][1], ", limited by " + bounds[-1] if bounds else "",
            data.workers[-1][1] if data.workers else 0)))
    sentence = advice or data.advice
    if sentence:
        rows.append(("advice said", sentence))
    # an empty icon: else the browser asks for /favicon.ico, a 404 (and a console error) on the live page
    parts = ['<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">',
             '<meta http-equiv="refresh" content="%d">' % refresh if refresh else "",
             '<title>%s</title><style>%s</style></head><body>' % (html.escape(title), STYLE),
             '<h1>%s</h1><table class="summary">%s</table>' % (html.escape(title), "".join(
                 "<tr><td>%s</td><td>%s</td></tr>" % (html.escape(k), html.escape(v)) for k, v in rows)),
             '<h2>Memory per process (%s), stacked, against the quota</h2>' % data.measure, mem,
             '<h2>Tasks and zombies against the task limit</h2>', tasks_chart(data, t0, t1),
             '<h2>Workers running and advised</h2>', workers_chart(data, t0, t1, bounds),
             '<p class="note">Each line is cut to one point per pixel, the peak of the samples there. '
             'Triangles on the time axis are restarts, coloured by reason.</p></body></html>\n']
    return "".join(parts)
