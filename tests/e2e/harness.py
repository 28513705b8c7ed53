"""The pieces of the full e2e harness that are ours to run: the ConfigMap projector, our controller and
ext_proc as local processes, fake upstreams on distinct loopback addresses, and the per-test ``Scenario``.

Contracts:
- ``ConfigMapProjector(kube, path)``: ``follow(ns, name)`` watches one ConfigMap (``kubectl get --watch``)
  and writes its ``filter-config.yaml`` to ``path`` atomically (write + rename, a new inode, as the kubelet's
  ``..data`` swap does), every time its content changes. ``writes`` counts the files written.
  ``SecretProjector(kube, directory)`` does the same for the Gateway's auth Secret: every key, decoded, as a
  file of ``directory`` (where the controller's ``--extproc-auth-dir`` points), as the kubelet mounts it.
  ``TLSProjector(kube, directory)`` projects the ext_proc's server pair and client CA from the Gateway's TLS
  Secret (the controller's ``--extproc-mtls``), swapped atomically as the kubelet does, where the ext_proc's
  ``--tls-*`` flags point.
- ``Upstreams``: ``start(name, host, port)`` runs an ``aigw.upstream.FakeUpstream`` in a thread; ``close()``
  stops them all. Pool members share the InferencePool's ``targetPortNumber``: pick it with
  ``tests.realparts.ports.common_port(hosts)``.
- ``Scenario``: one test's namespace and Gateway (its own listener port, its own Envoy started by Envoy
  Gateway); ``apply`` tracks what it created so ``close()`` deletes it all (an apiserver-only control plane
  has no namespace garbage collector); ``wait_ok`` polls until a request is answered as expected.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from aigw.upstream import FakeUpstream, serve_in_thread
from api.filterconfig import CONFIG_KEY
from controller.translate.names import extproc_tls_secret
from tests.e2e import objects
from tests.e2e.client import chat
from tests.e2e.kube import Kube, Obj, wait_for
from tests.realparts.envoygateway import EnvoyGateway
from tests.realparts.httpclient import Reply

CONFIGMAP_PREFIX = "ai-eg-extproc-"


class ConfigMapProjector:
    """Projects one ConfigMap's filter config into a file. See the module docstring."""

    RESOURCE = "configmaps"

    def __init__(self, kube: Kube, path: Path, log: Path) -> None:
        self.kube = kube
        self.path = path
        self.log = log
        self.writes = 0
        self.content: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def follow(self, namespace: str, name: str) -> None:
        """Stop following the previous ConfigMap, remove the file, and follow ``namespace/name``."""
        self.stop()
        with self._lock:
            self.content = None
        self._clear()
        cp = self.kube.cp
        argv = [
            str(cp.binaries.kubectl),
            f"--kubeconfig={cp.kubeconfig}",
            "get",
            self.RESOURCE,
            "-n",
            namespace,
            f"--field-selector=metadata.name={name}",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ]
        with self.log.open("ab") as err:
            err.write(f"---- following configmap {namespace}/{name}\n".encode())
            err.flush()
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        self._thread = threading.Thread(target=self._pump, args=(self._proc,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        stdout = proc.stdout
        assert stdout is not None
        decoder = json.JSONDecoder()
        utf8 = codecs.getincrementaldecoder("utf-8")()
        buf = ""
        for chunk in iter(lambda: os.read(stdout.fileno(), 65536), b""):
            buf += utf8.decode(chunk)
            while True:
                buf = buf.lstrip()
                try:
                    event, end = decoder.raw_decode(buf)
                except json.JSONDecodeError:
                    break
                buf = buf[end:]
                self._on_event(event)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "DELETED":
            return  # the kubelet keeps the last projected content until the pod goes
        data = (event.get("object") or {}).get("data") or {}
        self._project(data)

    def _clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def _project(self, data: dict[str, str]) -> None:
        content = data.get(CONFIG_KEY)
        with self._lock:
            if content is None or content == self.content:
                return
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            tmp.write_text(content)
            tmp.replace(self.path)
            self.content = content
            self.writes += 1
        with self.log.open("a") as f:
            f.write(f"---- projected {len(content)} bytes (write #{self.writes})\n")


class SecretProjector(ConfigMapProjector):
    """Projects every key of one Secret, decoded, as a file of the directory ``path`` (see the module
    docstring)."""

    RESOURCE = "secrets"

    def _clear(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def _project(self, data: dict[str, str]) -> None:
        content = json.dumps(data, sort_keys=True)
        with self._lock:
            if content == self.content:
                return
            self.path.mkdir(parents=True, exist_ok=True)
            for key, value in data.items():
                tmp = self.path / f".{key}.tmp"
                tmp.write_bytes(base64.b64decode(value))
                tmp.replace(self.path / key)
            self.content = content
            self.writes += 1
        with self.log.open("a") as f:
            f.write(f"---- projected {len(data)} keys (write #{self.writes})\n")


def project_atomically(directory: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into ``directory`` as the kubelet's atomic writer mounts a Secret: the content in a
    new hidden directory, ``..data`` swapped to it by one rename, each file a symlink through ``..data``. A
    reader never sees a new certificate with an old key, and a stat through the symlink sees a new inode."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.time_ns()}"
    stamp.mkdir()
    for key, value in files.items():
        (stamp / key).write_bytes(value)
    link = directory / "..data_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(stamp.name)
    link.replace(directory / "..data")
    for key in files:
        if not (directory / key).is_symlink():
            (directory / key).unlink(missing_ok=True)
            (directory / key).symlink_to(f"..data/{key}")
    for old in directory.glob("..[0-9]*"):
        if old != stamp:
            shutil.rmtree(old, ignore_errors=True)


class TLSProjector(SecretProjector):
    """Projects the ext_proc's part of a Gateway's TLS Secret (``ai-eg-extproc-<gw>-tls``): ``tls.crt``,
    ``tls.key`` and ``ca.crt`` (never ``ca.key``, as the Deployment's volume ``items`` do), atomically (see
    ``project_atomically``). Following another Secret keeps the files until its first content: the ext_proc
    keeps serving the last material, as a pod keeps its mount."""

    KEYS = ("tls.crt", "tls.key", "ca.crt")

    def _clear(self) -> None:
        pass

    def _project(self, data: dict[str, str]) -> None:
        if not all(k in data for k in self.KEYS):
            return
        content = json.dumps({k: data[k] for k in self.KEYS}, sort_keys=True)
        with self._lock:
            if content == self.content:
                return
            project_atomically(self.path, {k: base64.b64decode(data[k]) for k in self.KEYS})
            self.content = content
            self.writes += 1
        with self.log.open("a") as f:
            f.write(f"---- projected the TLS files (write #{self.writes})\n")


class Upstreams:
    """Fake OpenAI upstreams in threads, each on its own loopback address."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self.by_name: dict[str, FakeUpstream] = {}

    def start(self, name: str, host: str, port: int = 0) -> FakeUpstream:
        upstream = self._stack.enter_context(serve_in_thread(name=name, host=host, port=port))
        self.by_name[name] = upstream
        return upstream

    def counts(self) -> dict[str, int]:
        """Requests received so far, per upstream name."""
        return {name: len(u.received) for name, u in self.by_name.items()}

    def reset(self) -> None:
        for u in self.by_name.values():
            u.received.clear()

    def close(self) -> None:
        self._stack.close()
        self.by_name.clear()


def metrics_text(address: str) -> str:
    """The Prometheus text a process exposes at ``http://<address>/metrics``."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
        return text


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(4))
    return total


class Scenario:
    """One test's namespace + Gateway. See the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        kube: Kube,
        envoy_gateway: EnvoyGateway,
        projector: ConfigMapProjector,
        upstreams: Upstreams,
        extproc_metrics: str,
        auth_projector: SecretProjector | None = None,
        tls_projector: TLSProjector | None = None,
    ) -> None:
        self.ns = name
        self.gateway = "gw"
        self.kube = kube
        self.eg = envoy_gateway
        self.projector = projector
        self.auth_projector = auth_projector
        self.tls_projector = tls_projector
        self.upstreams = upstreams
        self.extproc_metrics = extproc_metrics
        self.port = objects.listener_port()
        self._created: list[Obj] = []

    def open(self) -> Scenario:
        self.kube.apply(objects.namespace(self.ns))
        self.projector.follow(self.ns, CONFIGMAP_PREFIX + self.gateway)
        if self.auth_projector is not None:
            self.auth_projector.follow(self.ns, CONFIGMAP_PREFIX + self.gateway)  # the auth Secret's name
        if self.tls_projector is not None:
            self.tls_projector.follow(self.ns, extproc_tls_secret(self.gateway))
        self.apply(objects.gateway(self.gateway, self.ns, self.port))
        return self

    def apply(self, *objs: Obj) -> None:
        self.kube.apply(*objs)
        for o in objs:
            if o not in self._created:
                self._created.append(o)

    def delete(self, *objs: Obj) -> None:
        self.kube.delete(*objs)
        for o in objs:
            if o in self._created:
                self._created.remove(o)

    def close(self) -> None:
        """Delete everything this scenario applied (the Gateway last: its Envoy stops with it)."""
        if self._created:
            self.kube.delete(*reversed(self._created))
            self._created.clear()

    def wait_ok(
        self,
        model: str,
        *,
        upstream: str | Callable[[str | None], bool] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Reply:
        """Poll until a chat request for ``model`` gets a 200 (from ``upstream``, when given)."""
        self.eg.wait_for_listener(self.port, timeout=timeout)

        def check() -> Reply | None:
            reply = chat(self.port, model, headers=headers)
            if reply.status != 200:
                return None
            if upstream is None:
                return reply
            good = upstream(reply.upstream) if callable(upstream) else reply.upstream == upstream
            return reply if good else None

        return wait_for(check, f"a 200 for model {model!r} through gateway {self.ns}/{self.gateway}", timeout)


@contextlib.contextmanager
def scenario(**kwargs: Any) -> Iterator[Scenario]:
    s = Scenario(**kwargs).open()
    try:
        yield s
    finally:
        s.close()
