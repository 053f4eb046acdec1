"""conf/: the dyno presets against supervisor/observe/dynos.py, the example config's hooks, and the
deployment files' key numbers (graceful stop under each platform's kill deadline)."""
import inspect
import os
import runpy
import stat

import pytest

from supervisor.observe import dynos, sizing
from supervisor.observe.metrics import ProcSample
from supervisor.config import SETTINGS, ConfigError, parse_bind

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conf")
MB = 1 << 20

BY_NAME = {s.name: s for s in SETTINGS}
# settings announced but not yet in the table: name -> a converter for their value
PENDING = {"metrics_bind": lambda value, name: parse_bind(value)}

# Gunicorn's hooks and their argument counts
HOOKS = {
    "on_starting": 1, "on_reload": 1, "when_ready": 1, "pre_fork": 2, "post_fork": 2,
    "post_worker_init": 1, "worker_int": 1, "worker_abort": 1, "pre_exec": 1,
    "pre_request": 2, "post_request": 4, "child_exit": 2, "worker_exit": 2,
    "nworkers_changed": 3, "on_exit": 1,
}

PRESETS = {
    "dyno-standard-1x.py": "standard-1x",
    "dyno-standard-2x.py": "standard-2x",
    "dyno-performance-m.py": "performance-m",
    "dyno-performance-l.py": "performance-l",
}

# The typical app the presets' comments size for: 150 MB private per worker, 60 MB for the
# master and the shared pages, cpu_busy_share not measured. Their workers are the advice
# for it, and their max_worker_memory each worker's part of what the advice allows:
# (quota x share - master and shared) / workers, rounded down to 10 MB.
TYPICAL_WORKER = 150 * MB
MASTER = 60 * MB


def typical_advice(d):
    def proc(slot, size):
        return ProcSample(slot, 1, size, size, size, 0, 1, 0, 0, 0, 0, 0.0, 0.0)
    inputs = sizing.Inputs(quota=d.quota, quota_source="dyno size " + d.name, cpus=d.cpus,
                           cpus_source="dyno size " + d.name, tasks_max=d.tasks)
    return sizing.advise(inputs, proc(-1, MASTER), [proc(0, TYPICAL_WORKER), proc(1, TYPICAL_WORKER)])
HEROKU_KILL_AFTER = 30        # seconds from SIGTERM to SIGKILL; also the router's H12 timeout


def names(path):
    """The file's module-level names, without the ones Python itself puts there."""
    return {k: v for k, v in runpy.run_path(path).items() if not k.startswith("__")}


def convert(name, value):
    if name in BY_NAME:
        return BY_NAME[name].convert(value, name)
    return PENDING[name](value, name)


def settings(path):
    """{name: converted value} for every setting the file assigns; fails on any other name."""
    out = {}
    for name, value in names(path).items():
        if name in HOOKS:
            assert callable(value), "%s: %s is a hook name but not a function" % (path, name)
            continue
        assert name in BY_NAME or name in PENDING, "%s: %r is not a pyfork setting" % (path, name)
        try:
            out[name] = convert(name, value)
        except ConfigError as exc:
            pytest.fail("%s: %s" % (path, exc))
    return out


@pytest.mark.parametrize("filename, size", sorted(PRESETS.items()))
def test_preset_matches_the_dyno_table(filename, size):
    cfg = settings(os.path.join(CONF, filename))
    d = dynos.lookup(cfg["dyno_size"])
    assert d.name == size
    assert cfg["memory_quota"] == d.quota
    a = typical_advice(d)
    assert cfg["workers"] == a.workers
    assert cfg["workers"] <= 2 * d.cpus + 1
    # the comment states the count, what binds it and the projection, as the advice gives them
    text = open(os.path.join(CONF, filename)).read()
    assert "# %d workers: what pyfork's advice" % a.workers in text
    assert "so %s: %d workers, projected %d MB (%d%% of the quota)" % (
        "memory binds" if a.limited_by is sizing.Bound.MEMORY else "the CPUs bind", a.workers,
        round(a.projected / MB), round(100 * a.projected_share)) in text


@pytest.mark.parametrize("filename, size", sorted(PRESETS.items()))
def test_preset_memory_ceiling_fits_the_quota(filename, size):
    cfg = settings(os.path.join(CONF, filename))
    d = dynos.lookup(size)
    room = d.quota * sizing.SHARE - MASTER
    per_worker = room / cfg["workers"]
    # the sum of the ceilings stays under the quota, and the rounding gives away < 10 MB
    assert cfg["max_worker_memory"] * cfg["workers"] <= room
    assert per_worker - cfg["max_worker_memory"] < 10 * MB


@pytest.mark.parametrize("filename, size", sorted(PRESETS.items()))
def test_preset_task_limits_fit_the_dyno(filename, size):
    """Every worker just under both recycling limits, plus the master, stays under the
    80% task warning of the dyno's limit."""
    cfg = settings(os.path.join(CONF, filename))
    d = dynos.lookup(size)
    threads, zombies = cfg["max_worker_threads"], cfg["max_worker_zombies"]
    assert threads > 0 and zombies > 0
    worst = cfg["workers"] * ((threads - 1) + (zombies - 1)) + 1
    assert worst <= 0.8 * d.tasks


@pytest.mark.parametrize("filename", sorted(PRESETS))
def test_preset_timeouts_fit_heroku(filename):
    cfg = settings(os.path.join(CONF, filename))
    assert cfg["timeout"] == HEROKU_KILL_AFTER
    assert cfg["graceful_timeout"] == 25 < HEROKU_KILL_AFTER
    assert cfg["keepalive"] > 90             # Router 2.0 closes idle connections at 90 s
    assert cfg["metrics_interval"] == 20
    assert cfg["preload"] is True
    assert "bind" not in cfg                 # on Heroku the bind comes from $PORT


def test_standard_1x_preset_is_right_for_eco_and_basic():
    one = dynos.lookup("standard-1x")
    for name in ("eco", "basic"):
        d = dynos.lookup(name)
        assert (d.quota, d.tasks, d.cpus, d.workers) == (one.quota, one.tasks, one.cpus, one.workers)


def test_example_config_defines_every_hook_with_gunicorns_arguments():
    ns = names(os.path.join(CONF, "pyfork.conf.py"))
    for hook, count in HOOKS.items():
        assert hook in ns, "conf/pyfork.conf.py has no %s hook" % hook
        params = inspect.signature(ns[hook]).parameters
        assert len(params) == count, "%s takes %s" % (hook, list(params))


class _Log:
    def __init__(self):
        self.lines = []

    def _line(self, msg, *args):
        self.lines.append(msg % args)

    debug = info = warning = error = critical = exception = _line


class _Thing:
    def __init__(self, log, **attrs):
        self.log = log
        self.__dict__.update(attrs)


def test_example_config_hooks_run_and_log_one_line_each():
    ns = names(os.path.join(CONF, "pyfork.conf.py"))
    log = _Log()
    server = _Thing(log)
    worker = _Thing(log, nr=1, age=1, pid=1234)
    req = _Thing(log, method="GET", path="/")
    resp = _Thing(log, status="200 OK")
    args = {
        "on_starting": (server,), "on_reload": (server,), "when_ready": (server,),
        "pre_fork": (server, worker), "post_fork": (server, worker),
        "post_worker_init": (worker,), "worker_int": (worker,), "worker_abort": (worker,),
        "pre_exec": (server,), "pre_request": (worker, req),
        "post_request": (worker, req, {}, resp), "child_exit": (server, worker),
        "worker_exit": (server, worker), "nworkers_changed": (server, 3, 2), "on_exit": (server,),
    }
    assert set(args) == set(HOOKS)
    for hook in HOOKS:
        before = len(log.lines)
        ns[hook](*args[hook])
        assert len(log.lines) == before + 1, hook
        assert hook in log.lines[-1]


def test_example_config_settings_convert():
    cfg = settings(os.path.join(CONF, "pyfork.conf.py"))
    assert "bind" not in cfg     # it would override $PORT and systemd's sockets


def test_procfile():
    with open(os.path.join(CONF, "Procfile")) as f:
        assert f.read().strip() == "web: pyfork run app:wsgi"


def _unit(path):
    """{key: value} of a systemd unit (last one wins), comments dropped."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";", "[")) and "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip()
    return out


def test_systemd_units():
    svc = _unit(os.path.join(CONF, "systemd", "pyfork.service"))
    assert svc["Type"] == "notify" and svc["NotifyAccess"] == "main"
    assert svc["ExecStart"].split()[1:3] == ["run", "app:wsgi"]
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert svc["KillSignal"] == "SIGTERM"
    assert int(svc["TimeoutStopSec"]) > 25
    assert svc["Requires"] == "pyfork.socket" and svc["User"]
    sock = _unit(os.path.join(CONF, "systemd", "pyfork.socket"))
    assert sock["ListenStream"] == "8000"


def test_kubernetes_deployment():
    yaml = pytest.importorskip("yaml")
    with open(os.path.join(CONF, "kubernetes", "deployment.yaml")) as f:
        doc = yaml.safe_load(f)
    spec = doc["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert spec["terminationGracePeriodSeconds"] > 25 + pre_stop
    assert c["resources"]["limits"]["memory"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert int(env["WEB_CONCURRENCY"]) >= 1
    assert "httpGet" in c["readinessProbe"] and "httpGet" in c["livenessProbe"]
    assert "--metrics-bind=0.0.0.0:9100" in c["args"]


def test_container_keeps_pyfork_pid_1():
    with open(os.path.join(CONF, "container", "Dockerfile")) as f:
        lines = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert 'ENTRYPOINT ["pyfork", "run"]' in lines
    path = os.path.join(CONF, "container", "entrypoint.sh")
    with open(path) as f:
        body = [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]
    assert body[-1] == 'exec pyfork run "$@"'
    assert os.stat(path).st_mode & stat.S_IXUSR


def test_kubernetes_autoscale_on_utilization():
    """The pod's memory limit is pyfork's quota, -w auto fits the pod, the HPA (through
    the adapter's rule) and KEDA scale on the counters pyfork serves on /metrics."""
    yaml = pytest.importorskip("yaml")
    from supervisor.observe import prometheus
    with open(os.path.join(CONF, "kubernetes", "autoscale.yaml")) as f:
        deploy, hpa = list(yaml.safe_load_all(f))
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    (quota,) = [e for e in c["env"] if e["name"] == "PYFORK_MEMORY_QUOTA"]
    assert quota["valueFrom"]["resourceFieldRef"] == {"containerName": c["name"], "resource": "limits.memory",
                                                      "divisor": "1"}
    assert "--workers=auto" in c["args"] and "--metrics-bind=0.0.0.0:9100" in c["args"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "pyfork_utilization"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]
    with open(os.path.join(CONF, "kubernetes", "prometheus-adapter.yaml")) as f:
        (rule,) = yaml.safe_load(yaml.safe_load(f)["data"]["config.yaml"])["rules"]
    with open(os.path.join(CONF, "kubernetes", "keda.yaml")) as f:
        query = yaml.safe_load(f)["spec"]["triggers"][0]["metadata"]["query"]
    served = prometheus.render(None, [], None, None, {}, 1, (0.5, 1.0, 2.0))
    for text in (rule["metricsQuery"], query):
        for name in ("pyfork_busy_thread_seconds_total", "pyfork_thread_seconds_total"):
            assert name in text and ("\n%s " % name) in served
    assert rule["name"]["as"] == "pyfork_utilization"
