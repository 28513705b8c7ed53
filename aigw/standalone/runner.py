"""``aigw run``: build, start, watch and stop the standalone gateway.

Life cycle:

1. **Build** (``_build``): read the input files, validate them into the store, pick the Gateway, resolve the
   pool members' DNS names, and run the controller's builders (``translate``). Any input problem is an error
   naming the file; conditions that are not True are printed as warnings.
2. **Start**: demo upstreams (for Backends annotated as such), the ext_proc on the written filter config, then
   Envoy on the static bootstrap. Each must answer before the next starts; the first failure stops everything
   and prints the child's last lines.
3. **Run**: every ``poll_interval`` the input files are checked (mtime and size, new and deleted files too),
   and every child is checked. A change re-runs the build; a good result is applied without dropping requests:
   clusters and routes for old *and* new backends go to Envoy first (file xDS, acknowledged through Envoy's
   counters), then the filter config to the ext_proc (acknowledged through its config metric), then the
   clusters no longer used are removed. A bad result is reported and the running config stays. Expiring DNS
   answers trigger the same rebuild. A child that dies is restarted (at most 5 times a minute).
4. **Stop** on SIGINT/SIGTERM: every child is stopped (reverse start order, process groups), and the temporary
   working directory is removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from aigw.envoybin import envoy_binary
from aigw.standalone import envoyconfig, probes
from aigw.standalone.atomic import write_atomically
from aigw.standalone.banner import ready_banner, routed_models, shadowed_matches
from aigw.standalone.children import Child, Children, spawn, wait_until
from aigw.standalone.envoyconfig import Address, BackendCluster, GatewayPorts, HeaderRoute
from aigw.standalone.inputs import Fingerprint, fingerprint, load_objects
from aigw.standalone.loopbacktls import write_loopback_mtls
from aigw.standalone.store import build_store
from aigw.standalone.translate import (
    DemoUpstream,
    Translation,
    choose_gateway,
    hostnames,
    translate,
)
from api.filterconfig import CONFIG_KEY
from controller.extensionserver.options import ExtensionServerOptions
from controller.translate import DEFAULT_MAX_BODY_BYTES, BuildOptions, DnsAnswer, ObjKey

log = logging.getLogger("aigw")

Resolver = Callable[[Sequence[str]], Mapping[str, DnsAnswer]]
"""Resolves hostnames to the answers the builders read (the controller's DNS resolver)."""


DEFAULT_LISTEN = Address(host="127.0.0.1", port=1975)
DEFAULT_ADMIN = Address(host="127.0.0.1", port=9901)
DEFAULT_EXTPROC = Address(host="127.0.0.1", port=1063)
DEFAULT_EXTPROC_METRICS = Address(host="127.0.0.1", port=1064)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Everything ``aigw run`` is told on its command line."""

    inputs: tuple[Path, ...]
    gateway: ObjKey | None = None
    listen: Address = DEFAULT_LISTEN
    admin: Address = DEFAULT_ADMIN
    extproc: Address = DEFAULT_EXTPROC
    extproc_metrics: Address = DEFAULT_EXTPROC_METRICS
    workdir: Path | None = None
    """Where generated files go; a temporary directory (removed at exit) when None."""
    demo_upstreams: bool = True
    access_log: bool = True
    poll_interval: float = 0.5
    ready_timeout: float = 30.0
    envoy_log_level: str = "warning"
    extproc_log_level: str = "info"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


class StartupError(RuntimeError):
    """``aigw run`` cannot start; the message says why and what to do."""


class BuildError(RuntimeError):
    """The inputs do not build; ``problems`` are one line each, naming the file."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, kw_only=True)
class _Applied:
    translation: Translation
    clusters: tuple[BackendCluster, ...]
    routes: tuple[HeaderRoute, ...]


_MAX_RESTARTS_PER_MINUTE = 5


class StandaloneGateway:
    """One ``aigw run``: owns the working directory and every child process."""

    def __init__(self, options: RunOptions, *, resolver: Resolver) -> None:
        self.options = options
        self._resolver = resolver
        self._own_workdir = options.workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="aigw-run-")) if options.workdir is None else options.workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.auth_dir = self.workdir / "auth"
        self.xds_dir = self.workdir / "xds"
        self.filter_config_path = self.workdir / CONFIG_KEY
        self.bootstrap_path = self.workdir / "envoy.yaml"
        self.tls = write_loopback_mtls(self.workdir / "tls")
        self.children = Children()
        self._envoy: Child | None = None
        self._extproc: Child | None = None
        self._upstreams: dict[DemoUpstream, Child] = {}
        self._restarts: dict[str, list[float]] = {}
        self._applied: _Applied | None = None
        self._fingerprint: Fingerprint | None = None
        self._dns_deadline: float | None = None
        self._stop_requested = False
        self._reload_requested = False
        self.build_options = BuildOptions(
            enable_inference_extension=True,
            auth_dir=str(self.auth_dir),
            config_dir=str(self.workdir),
            max_body_bytes=options.max_body_bytes,
        )

    # --- build

    def build(self) -> Translation:
        """Read the inputs and run the builders; raise ``BuildError`` listing every input problem."""
        result = load_objects(self.options.inputs)
        for note in result.ignored:
            log.info("ignored: %s", note)
        store, invalid = build_store(result.objects)
        errors = [str(e) for e in (*result.errors, *invalid)]
        if errors:
            raise BuildError(errors)
        try:
            gateway, gateway_object = choose_gateway(store, self.options.gateway)
        except ValueError as e:
            raise BuildError([str(e)]) from e
        names = hostnames(store, gateway=gateway, gateway_object=gateway_object, options=self.build_options)
        dns = self._resolver(names) if names else {}
        tr = translate(
            store, gateway=gateway, gateway_object=gateway_object, options=self.build_options, dns=dns
        )
        if tr.refusals:  # a key the ext_proc would refuse: the previous config and key keep serving
            raise BuildError(list(tr.refusals))
        return tr

    # --- start

    def start(self) -> Translation:
        """Build, write every file, start the children; return the translation being served."""
        self._check_ports()
        self._fingerprint = fingerprint(self.options.inputs)
        tr = self.build()
        self.report(tr)
        self._write_auth(tr)
        write_atomically(self.filter_config_path, tr.filter_config_yaml.encode())
        self._write_xds(tr.clusters, tr.routes, tr.pool_timeout_seconds)
        self._sync_upstreams(tr.demo_upstreams, remove=True)
        self._start_extproc()
        serving = wait_until(self._extproc_serving(tr.filter_config.uuid), timeout=self.options.ready_timeout)
        if not serving or self._extproc is None or not self._extproc.alive():
            raise StartupError(self._died("extproc", self._extproc, "did not load the filter config"))
        self._write_bootstrap(tr)
        self._start_envoy()
        self._applied = _Applied(translation=tr, clusters=tr.clusters, routes=tr.routes)
        self._schedule_dns(tr)
        return tr

    def _check_ports(self) -> None:
        o = self.options
        for what, addr, flag in (
            ("the gateway listener", o.listen, "--port"),
            ("Envoy's admin", o.admin, "--admin-port"),
            ("the ext_proc", o.extproc, "--extproc-port"),
            ("the ext_proc metrics", o.extproc_metrics, "--extproc-metrics-port"),
        ):
            if probes.port_in_use(addr):
                raise StartupError(
                    f"{addr.host}:{addr.port} ({what}) is already in use: choose another with {flag}"
                )

    def _start_extproc(self) -> None:
        o = self.options
        argv = [
            sys.executable,
            "-m",
            "extproc.main",
            "--config",
            str(self.filter_config_path),
            "--listen",
            f"{o.extproc.host}:{o.extproc.port}",
            "--metrics-listen",
            f"{o.extproc_metrics.host}:{o.extproc_metrics.port}",
            "--grace",
            "2",
            "--log-level",
            o.extproc_log_level,
            # only this run's Envoy holds a client certificate the ext_proc accepts
            "--tls-cert",
            str(self.tls.server_cert),
            "--tls-key",
            str(self.tls.server_key),
            "--tls-client-ca",
            str(self.tls.ca),
        ]
        child = spawn(name="extproc", argv=argv, env=_child_env())
        if self._extproc is None:
            self.children.add(child)
        else:
            self.children.replace(self._extproc, child)
        self._extproc = child

    def _write_bootstrap(self, tr: Translation) -> None:
        o = self.options
        bootstrap = envoyconfig.bootstrap(
            ports=GatewayPorts(listener=o.listen, admin=o.admin, extproc=o.extproc),
            xds_dir=self.xds_dir,
            original_dst_cluster=envoyconfig.original_destination_cluster(options=ExtensionServerOptions()),
            extproc=tr.extproc,
            access_log=o.access_log,
            buffer_limit_bytes=tr.buffer_limit_bytes,
            local_replies=tr.local_replies,
            extproc_tls=self.tls,
        )
        write_atomically(self.bootstrap_path, yaml.safe_dump(bootstrap, sort_keys=False).encode())

    def _start_envoy(self) -> None:
        o = self.options
        argv = [
            str(envoy_binary()),
            "-c",
            str(self.bootstrap_path),
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            o.envoy_log_level,
            "--log-format",
            "[%l] %v",
            "--file-flush-interval-msec",
            "250",
        ]
        child = spawn(name="envoy", argv=argv)
        if self._envoy is None:
            self.children.add(child)
        else:
            self.children.replace(self._envoy, child)
        self._envoy = child
        ready = wait_until(
            lambda: not child.alive() or probes.envoy_ready(o.admin), timeout=self.options.ready_timeout
        )
        if not ready or not child.alive():
            raise StartupError(self._died("envoy", child, "did not become ready"))

    def _sync_upstreams(self, wanted: Sequence[DemoUpstream], *, remove: bool) -> None:
        """Start the demo upstreams in ``wanted`` that are not running; with ``remove``, stop the others."""
        if not self.options.demo_upstreams:
            return
        started: list[tuple[DemoUpstream, Child]] = []
        for up in wanted:
            if up in self._upstreams:
                continue
            if probes.port_in_use(up.address):
                log.warning(
                    "demo upstream %s: %s:%d is already in use; not starting one there",
                    up.name,
                    up.address.host,
                    up.address.port,
                )
                continue
            child = self._spawn_upstream(up)
            self._upstreams[up] = self.children.add(child)
            started.append((up, child))
        for up, child in started:
            if not _wait_listening(child, up.address, timeout=self.options.ready_timeout):
                raise StartupError(self._died(f"upstream {up.name}", child, "did not start"))
            log.info("demo upstream %s listening on %s:%d", up.name, up.address.host, up.address.port)
        if remove:
            for up in [u for u in self._upstreams if u not in wanted]:
                child = self._upstreams.pop(up)
                child.stop()
                self.children.remove(child)
                log.info("demo upstream %s on %s:%d stopped", up.name, up.address.host, up.address.port)

    def _spawn_upstream(self, up: DemoUpstream) -> Child:
        if up.sim:  # a simulated vLLM replica answering whatever model the gateway routes to it
            listen = f"{up.address.host}:{up.address.port}"  # aigw-sim splits at the last colon (IPv6 too)
            argv = [sys.executable, "-m", "aigw.sim", "--listen", listen, "--name", up.name, "--any-model"]
        else:
            argv = [
                sys.executable,
                "-m",
                "aigw.upstream",
                "--host",
                up.address.host,
                "--port",
                str(up.address.port),
                "--name",
                up.name,
            ]
        return spawn(name=f"upstream.{up.name}", argv=argv, env=_child_env(), echo=False)

    # --- run

    def run_forever(self) -> None:
        """Watch inputs, DNS expiry and children until SIGINT/SIGTERM (or ``request_stop``)."""
        while not self._stop_requested:
            time.sleep(self.options.poll_interval)
            if self._stop_requested:
                break
            self._check_children()
            current = fingerprint(self.options.inputs)
            if current != self._fingerprint:
                current = self._settled_fingerprint(current)
            dns_due = self._dns_deadline is not None and time.monotonic() >= self._dns_deadline
            if current != self._fingerprint or self._reload_requested or dns_due:
                self._fingerprint = current
                self._reload_requested = False
                self.reload(reason="DNS answers expired" if dns_due else "input files changed", quiet=dns_due)

    def _settled_fingerprint(
        self, current: Fingerprint, *, quiet_period: float = 0.2, limit: float = 2.0
    ) -> Fingerprint:
        """Wait until the inputs stop changing for ``quiet_period`` (an editor may write a file in steps)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(quiet_period)
            again = fingerprint(self.options.inputs)
            if again == current:
                break
            current = again
        return current

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def request_stop(self) -> None:
        self._stop_requested = True

    def request_reload(self) -> None:
        self._reload_requested = True

    def reload(self, *, reason: str, quiet: bool = False) -> bool:
        """Rebuild and apply; on any problem keep serving the previous config. True when applied.

        ``quiet`` (periodic DNS refreshes) logs at debug level unless something changed.
        """
        log.log(logging.DEBUG if quiet else logging.INFO, "reloading: %s", reason)
        try:
            tr = self.build()
        except BuildError as e:
            for p in e.problems:
                log.error("%s", p)
            log.error("the previous config keeps serving; fix the input and save it again")
            return False
        except Exception as e:  # a bug in a builder must not take down a running gateway
            log.exception("building the config failed: %s; the previous config keeps serving", e)
            return False
        prev = self._applied
        if not quiet or prev is None or prev.translation.problems != tr.problems:
            self.report(tr)
        self._schedule_dns(tr)
        if prev is not None and _same(prev, tr):
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "nothing changed (config %s)",
                tr.filter_config.uuid[:12],
            )
            self._sync_upstreams(tr.demo_upstreams, remove=True)
            return True
        self._sync_upstreams(tr.demo_upstreams, remove=False)
        before = probes.extproc_reloads(self.options.extproc_metrics)
        written = self._write_auth(tr, remove_stale=False)
        if prev is not None:
            # 1. Envoy learns the new clusters and routes while keeping the old ones.
            union_clusters = {c.name: c for c in (*prev.clusters, *tr.clusters)}
            union_routes = {r.value: r for r in (*prev.routes, *tr.routes)}
            if not self._apply_xds(
                tuple(union_clusters.values()), tuple(union_routes.values()), tr.pool_timeout_seconds
            ):
                self._apply_xds(
                    prev.clusters, prev.routes, prev.translation.pool_timeout_seconds, routes_first=True
                )
                log.error("the previous config keeps serving")
                return False
        # 2. The ext_proc switches to the new config.
        written = write_atomically(self.filter_config_path, tr.filter_config_yaml.encode()) or written
        # the ext_proc's verdict: a credential-only change keeps the uuid, so wait for a new load attempt
        attempts = before[0] if before is not None and written else None
        if not wait_until(self._extproc_verdict(tr.filter_config.uuid, attempts=attempts), timeout=10.0):
            log.error(
                "the ext_proc did not confirm config %s within 10s (see its log above)", tr.filter_config.uuid
            )
        verdict = probes.extproc_reloads(self.options.extproc_metrics)
        if attempts is not None and prev is not None and verdict is not None and verdict[1]:
            # put back the files it serves from, so a later restart of it loads them too
            self._write_auth(prev.translation, remove_stale=False)
            write_atomically(self.filter_config_path, prev.translation.filter_config_yaml.encode())
            log.error("the ext_proc refused config %s (see its log above)", tr.filter_config.uuid[:12])
            log.error("the previous config keeps serving; fix the input and save it again")
            return False
        # 3. Routes, then clusters, that nothing selects any more go away.
        self._apply_xds(tr.clusters, tr.routes, tr.pool_timeout_seconds, routes_first=True)
        self._write_auth(tr, remove_stale=True)
        self._sync_upstreams(tr.demo_upstreams, remove=True)
        self._applied = _Applied(translation=tr, clusters=tr.clusters, routes=tr.routes)
        log.info(
            "config %s is serving%s; models: %s",
            tr.filter_config.uuid[:12],
            " (DNS answers changed)" if quiet else "",
            ", ".join(m for m, _ in routed_models(tr.filter_config)) or "none",
        )
        return True

    def _apply_xds(
        self,
        clusters: Sequence[BackendCluster],
        routes: Sequence[HeaderRoute],
        pool_timeout: float,
        *,
        routes_first: bool = False,
    ) -> bool:
        """Hand clusters and routes to Envoy, one file at a time, each acknowledged before the next.

        Clusters go first when they are added (a route never points at a cluster Envoy lacks), routes first
        when they are removed. False (logged) when Envoy rejects a file or does not take it within 10 s.
        """
        cds, rds = self._xds_documents(clusters, routes, pool_timeout)
        steps = [
            (envoyconfig.CDS_FILE, cds, "cluster_manager.cds.update"),
            (envoyconfig.RDS_FILE, rds, "http.gateway.rds.aigw.update"),
        ]
        if routes_first:
            steps.reverse()
        return all(self._apply_file(name, data, counter) for name, data, counter in steps)

    def _apply_file(self, name: str, data: bytes, counter: str) -> bool:
        before = probes.envoy_counters(self.options.admin)
        if not write_atomically(self.xds_dir / name, data):
            return True
        if not wait_until(
            lambda: _total(probes.envoy_counters(self.options.admin), counter) > _total(before, counter),
            timeout=10.0,
        ):
            log.error("Envoy did not pick up the new %s within 10s", name)
            return False
        if probes.envoy_counters(self.options.admin).get(f"{counter}_rejected", 0) > before.get(
            f"{counter}_rejected", 0
        ):
            log.error("Envoy rejected the new %s (see its log above)", name)
            return False
        return True

    def _xds_documents(
        self, clusters: Sequence[BackendCluster], routes: Sequence[HeaderRoute], pool_timeout: float
    ) -> tuple[bytes, bytes]:
        cds = envoyconfig.cds_document(clusters)
        rds = envoyconfig.rds_document(routes, pool_timeout_seconds=pool_timeout)
        return (
            yaml.safe_dump(cds, sort_keys=False).encode(),
            yaml.safe_dump(rds, sort_keys=False).encode(),
        )

    def _write_xds(
        self, clusters: Sequence[BackendCluster], routes: Sequence[HeaderRoute], pool_timeout: float
    ) -> None:
        """Write both files without waiting (before Envoy starts)."""
        cds, rds = self._xds_documents(clusters, routes, pool_timeout)
        write_atomically(self.xds_dir / envoyconfig.CDS_FILE, cds)
        write_atomically(self.xds_dir / envoyconfig.RDS_FILE, rds)

    def _write_auth(self, tr: Translation, *, remove_stale: bool = True) -> bool:
        """Write ``tr``'s credential files; True when one of them changed."""
        self.auth_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.auth_dir, 0o700)
        changed = False
        for name, data in tr.auth_files.items():
            changed = write_atomically(self.auth_dir / name, data) or changed
        if remove_stale:
            for f in self.auth_dir.iterdir():
                if f.name not in tr.auth_files and not f.name.startswith("."):
                    f.unlink(missing_ok=True)
        return changed

    def _extproc_serving(self, uuid: str) -> Callable[[], bool]:
        """A predicate: the ext_proc serves config ``uuid``, or it died (the caller checks which)."""

        def check() -> bool:
            ext = self._extproc
            return (
                ext is None
                or not ext.alive()
                or probes.extproc_config_uuid(self.options.extproc_metrics) == uuid
            )

        return check

    def _extproc_verdict(self, uuid: str, *, attempts: int | None) -> Callable[[], bool]:
        """A predicate: the ext_proc has judged config ``uuid`` (it serves it, or, once it tried more than
        ``attempts`` loads, its last attempt failed), or it died. ``attempts`` None: only the uuid counts."""
        serving = self._extproc_serving(uuid)
        metrics = self.options.extproc_metrics

        def check() -> bool:
            if attempts is None:
                return serving()
            state = probes.extproc_reloads(metrics)
            if state is None or state[0] <= attempts:
                return self._extproc is None or not self._extproc.alive()
            return state[1] or serving()

        return check

    def _schedule_dns(self, tr: Translation) -> None:
        self._dns_deadline = None if tr.requeue_after is None else time.monotonic() + tr.requeue_after

    def _check_children(self) -> None:
        for child in self.children.dead():
            name, code = child.name, child.proc.returncode
            history = [t for t in self._restarts.get(name, []) if t > time.monotonic() - 60]
            if len(history) >= _MAX_RESTARTS_PER_MINUTE:
                raise StartupError(
                    self._died(name, child, f"exited ({code}) {len(history)} times in a minute")
                )
            history.append(time.monotonic())
            self._restarts[name] = history
            log.error("%s exited with %s; restarting it. Its last lines:\n%s", name, code, child.tail_text())
            if child is self._envoy:
                self._start_envoy()
            elif child is self._extproc:
                self._start_extproc()
            else:
                for up, c in list(self._upstreams.items()):
                    if c is child:
                        new = self._spawn_upstream(up)
                        self.children.replace(child, new)
                        self._upstreams[up] = new

    # --- stop

    def stop(self) -> None:
        """Stop every child (newest first) and remove a temporary working directory. Never raises."""
        self.children.stop_all()
        self._upstreams.clear()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # --- messages

    def report(self, tr: Translation) -> None:
        for p in (*tr.problems, *shadowed_matches(tr.filter_config)):
            log.warning("%s", p)

    def _died(self, name: str, child: Child | None, what: str) -> str:
        if child is None:
            return f"{name} {what}"
        state = "is running" if child.alive() else f"exited with {child.proc.returncode}"
        return f"{name} {what} ({state}). Its last lines:\n{child.tail_text()}"

    def banner(self, tr: Translation) -> str:
        o = self.options
        return ready_banner(
            translation=tr,
            listen=o.listen,
            admin=o.admin,
            inputs=o.inputs,
            workdir=self.workdir,
            upstreams=tuple(self._upstreams),
        )


def _wait_listening(child: Child, address: Address, *, timeout: float) -> bool:
    """Wait until ``child`` accepts connections on ``address``; False when it died or timed out."""
    wait_until(lambda: not child.alive() or probes.tcp_open(address), timeout=timeout)
    return child.alive() and probes.tcp_open(address)


def _same(prev: _Applied, tr: Translation) -> bool:
    return (
        prev.translation.filter_config_yaml == tr.filter_config_yaml
        and prev.clusters == tr.clusters
        and prev.routes == tr.routes
        and prev.translation.pool_timeout_seconds == tr.pool_timeout_seconds
        and dict(prev.translation.auth_files) == dict(tr.auth_files)
    )


def _total(counters: Mapping[str, int], prefix: str) -> int:
    return counters.get(f"{prefix}_success", 0) + counters.get(f"{prefix}_rejected", 0)


def _child_env() -> dict[str, str]:
    """This environment, with the directory holding our packages first on PYTHONPATH (works uninstalled)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run(options: RunOptions, *, resolver: Resolver, out: Any = None) -> int:
    """Run the standalone gateway until SIGINT/SIGTERM; return the process exit code."""
    gw = StandaloneGateway(options, resolver=resolver)
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            gw.request_reload()
            return
        if gw.stop_requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        log.info("%s received: stopping", signal.Signals(signum).name)
        gw.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        try:
            tr = gw.start()
        except (BuildError, StartupError) as e:
            log.error("%s", e)
            return 1
        if gw.stop_requested:
            return 0
        print(gw.banner(tr), file=out or sys.stdout, flush=True)
        gw.run_forever()
        return 0
    except StartupError as e:
        log.error("%s", e)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        gw.stop()
        log.info("stopped; no child process left")
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def check(options: RunOptions, *, resolver: Resolver, out: Any = None) -> int:
    """Build once without starting anything: print every problem; 0 when all objects are accepted and
    resolved, 1 otherwise."""
    gw = StandaloneGateway(options, resolver=resolver)
    try:
        tr = gw.build()
    except BuildError as e:
        for p in e.problems:
            log.error("%s", p)
        return 1
    finally:
        gw.stop()
    gw.report(tr)
    models = ", ".join(m for m, _ in routed_models(tr.filter_config)) or "none"
    verdict = "problems found" if tr.problems else "OK"
    print(
        f"{verdict}: Gateway {tr.gateway}, {len(tr.filter_config.rules)} rules, models: {models}",
        file=out or sys.stdout,
        flush=True,
    )
    return 1 if tr.problems else 0


__all__ = ["BuildError", "RunOptions", "StandaloneGateway", "StartupError", "check", "run"]
